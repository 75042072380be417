"""Errors that become error records. Each carries a stable ``code`` (docs/FORMATS.md lists them)."""

from __future__ import annotations

ERROR_CODES = {
    "not_found": "the path does not exist",
    "not_a_file": "a directory or special file where an image was expected",
    "unreadable": "the file could not be opened (permissions, I/O error)",
    "empty_file": "zero bytes",
    "unsupported_format": "not an image format medaudit reads",
    "corrupt_image": "the container is broken (bad chunk, broken markers, invalid DICOM)",
    "truncated": "the file ends before its data does",
    "missing_decoder": "a DICOM transfer syntax whose decoder plugin is not installed",
    "no_pixel_data": "a DICOM object without an image",
    "too_many_pixels": "the declared size exceeds --max-pixels (decompression-bomb guard)",
    "too_large": "the file is larger than --max-bytes (checked before reading)",
    "too_small": "an image with a side under 2 pixels: too small for the reuse index to hash",
    "outside_root": "a claims-CSV path outside the screening root (--root, --allow-outside); not read",
    "symlink_loop": "a directory reached again through a symbolic link",
    "timeout": "the per-file time limit was reached",
    "internal_error": "a bug in medaudit: please report it with the file",
}


class InputError(Exception):
    """An input that cannot be scanned; turned into ``{"status": "error", "error": {code, message}}``."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
