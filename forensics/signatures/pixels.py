"""The pixel digest a signed statement carries, so a verifier can tell "pixels changed" from "bytes around them
changed" (metadata edits, lossless re-encoding) when a hash binding over the whole file breaks."""

from __future__ import annotations

import hashlib

import numpy as np


def levels_sha256(levels: np.ndarray) -> str:
    """SHA-256 (hex) of integer pixel levels together with their shape and type."""
    a = np.ascontiguousarray(levels)
    a = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
    h = hashlib.sha256(f"{a.shape}|{a.dtype.kind}{a.dtype.itemsize}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def display_sha256(pixels: np.ndarray, bit_depth: int) -> str:
    """Digest of a raster as ``forensics.io.load`` decodes it: levels at the file's bit depth (8 or 16)."""
    maxv, dtype = (255, np.uint8) if bit_depth <= 8 else (65535, np.uint16)
    levels = np.rint(np.clip(np.asarray(pixels, dtype=np.float64), 0.0, 1.0) * maxv).astype(dtype)
    return levels_sha256(levels)
