"""The bad-input corpus, built in a temporary folder: every way an input can be broken that we know of.

``build_corpus(root)`` writes the files and returns :class:`Case` records: where the file is and which error
codes are acceptable for it (a set, because e.g. a DICOM cut inside its header is ``truncated`` or, when so little
is left that it no longer looks like DICOM, ``unsupported_format``). ``"ok"`` in a set means the file may also
scan cleanly (a bit flip in pixel data is still an image).

The PNG zlib bomb (20000 x 20000 zeros in a few hundred kB) is built separately (:func:`png_zlib_bomb`): it takes
a second of CPU and is only needed by the memory-bound test.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.examples
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from benchmarks.fuzz import png_chunk, seed_files

TRUNCATED = {"truncated", "corrupt_image", "unsupported_format"}


@dataclass
class Case:
    """``codes``: acceptable outcomes of scanning the file; ``index_codes``: of filing it in the reuse index
    (``index add``; default: ``codes``); ``named_codes``: of scanning it named in a claims CSV (``screen``, where a
    path is never walked and must lie under the CSV's folder; default: ``codes``)."""

    name: str
    path: Path
    codes: set[str]
    note: str = ""
    extra: dict = field(default_factory=dict)
    index_codes: set[str] | None = None
    named_codes: set[str] | None = None

    def filing(self) -> set[str]:
        return self.index_codes if self.index_codes is not None else self.codes

    def named(self) -> set[str]:
        return self.named_codes if self.named_codes is not None else self.codes


def ct_bytes() -> bytes:
    return Path(pydicom.examples.get_path("ct")).read_bytes()


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def small_dicom(**attrs) -> Dataset:
    """A valid 8 x 8 MONOCHROME2 secondary-capture DICOM with ``attrs`` set on top."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(range(64))
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def absurd_dimensions() -> bytes:
    """Rows = Columns = 65535 with 10000 frames and 16 bytes of pixel data."""
    return dicom_bytes(small_dicom(Rows=65535, Columns=65535, NumberOfFrames=10000, PixelData=b"\x00" * 16))


def deep_sequences(levels: int = 500) -> bytes:
    """An explicit-VR DICOM whose first data element is ``levels`` nested undefined-length sequences."""
    head = dicom_bytes(small_dicom())
    meta_end = 132 + 12 + struct.unpack("<I", head[140:144])[0]  # (0002,0000) group length tells where meta ends
    seq_open = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)  # ReferencedImageSequence
    item_open = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq_close = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    nested = (seq_open + item_open) * levels + (item_close + seq_close) * levels
    # first element after the file meta: out of tag order, which pydicom accepts; the parser meets it at once
    return head[:meta_end] + nested + head[meta_end:]


def wrong_vrs() -> bytes:
    """CT with explicit VRs edited: Rows claims VR 'DS' with text, Columns 'SQ' (a sequence of nonsense)."""
    data = bytearray(ct_bytes())
    rows = data.find(struct.pack("<HH", 0x0028, 0x0010) + b"US")
    data[rows + 4 : rows + 6] = b"XX"  # an unknown VR
    cols = data.find(struct.pack("<HH", 0x0028, 0x0011) + b"US")
    data[cols + 4 : cols + 6] = b"FD"  # 2 bytes where an 8-byte float is declared
    return bytes(data)


def png_header_bomb(width: int = 1_000_000, height: int = 1_000_000) -> bytes:
    """A valid-CRC PNG of a few dozen bytes whose IHDR declares width x height."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_zlib_bomb(side: int = 20000) -> bytes:
    """A real zlib bomb: side x side 8-bit grey, every row filter 0 and zeros, compressed (~1000:1)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    rows_per_block = max(1, (1 << 22) // len(row))
    block = row * rows_per_block
    parts = []
    left = side
    while left > 0:
        k = min(rows_per_block, left)
        parts.append(comp.compress(block if k == rows_per_block else row * k))
        left -= k
    parts.append(comp.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def broken_jpegs() -> dict[str, tuple[bytes, set[str]]]:
    jpeg = seed_files()["jpeg_gray"][0]
    sos = jpeg.find(b"\xff\xda")
    sof = jpeg.find(b"\xff\xc0")
    zero_len = bytearray(jpeg)
    zero_len[4:6] = b"\x00\x00"  # APP0 length 0
    huge_len = bytearray(jpeg)
    huge_len[sof + 2 : sof + 4] = b"\xff\xff"  # SOF runs past the end
    no_sof = jpeg[:sof] + jpeg[sof + 2 + struct.unpack(">H", jpeg[sof + 2 : sof + 4])[0] :]
    zero_size = bytearray(jpeg)
    zero_size[sof + 5 : sof + 9] = b"\x00\x00\x00\x00"
    return {
        "jpeg_no_eoi": (jpeg[:-2], {"truncated"}),
        "jpeg_cut_in_scan": (jpeg[: sos + (len(jpeg) - sos) // 2], {"truncated"}),
        "jpeg_cut_in_header": (jpeg[: sof + 5], {"truncated"}),
        "jpeg_zero_length_segment": (bytes(zero_len), {"corrupt_image"}),
        "jpeg_segment_overruns": (bytes(huge_len), {"truncated", "corrupt_image"}),
        "jpeg_scan_before_frame": (bytes(no_sof), {"corrupt_image"}),
        "jpeg_zero_size": (bytes(zero_size), {"corrupt_image"}),
        "jpeg_soi_only": (b"\xff\xd8\xff", {"truncated", "corrupt_image"}),
        "jpeg_garbage_after_soi": (b"\xff\xd8\xff" + bytes(random.Random(3).randbytes(4000)), TRUNCATED),
        "jpeg_two_sois": (jpeg[:2] + jpeg, {"ok", "corrupt_image", "truncated"}),
    }


def build_corpus(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (created) and return its cases. Special files (links, folders) included."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes, codes: set[str], note: str = "", suffix: str = "") -> Path:
        path = root / (name + suffix)
        path.write_bytes(data)
        cases.append(Case(name, path, codes, note))
        return path

    ct = ct_bytes()
    pixel_offset = ct.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data
    # DICOM cut at 20 offsets spread over header and pixel data (0 bytes is the empty-file case)
    for cut in sorted({1, 64, 131, 132, 140, 200} | {len(ct) * k // 14 for k in range(1, 14)} |
                                   {len(ct) - 1}):
        # a cut that lands between two header elements leaves a complete header without pixels: no_pixel_data
        codes = TRUNCATED | ({"no_pixel_data"} if cut < pixel_offset else set())
        add(f"dicom_cut_{cut:06d}", ct[:cut], codes, f"CT_small.dcm cut at byte {cut}", ".dcm")
    rng = random.Random(0)
    for i in range(8):
        flipped = bytearray(ct)
        for _ in range(16):
            pos = rng.randrange(128, len(ct))
            flipped[pos] ^= 1 << rng.randrange(8)
        add(f"dicom_bitflips_{i}", bytes(flipped), TRUNCATED | {"ok", "no_pixel_data", "too_many_pixels"},
            "16 random bit flips after the preamble", ".dcm")
    add("dicom_wrong_vrs", wrong_vrs(), {"corrupt_image", "ok"}, "Rows VR 'XX', Columns VR 'FD' (2 bytes)", ".dcm")
    add("dicom_absurd_dimensions", absurd_dimensions(), {"too_many_pixels"},
        "Rows=Columns=65535, NumberOfFrames=10000", ".dcm")
    add("dicom_deep_sequences", deep_sequences(500), {"corrupt_image", "ok"},
        "500 nested undefined-length sequences", ".dcm")
    add("dicom_no_pixels", dicom_bytes(_without_pixels()), {"no_pixel_data"}, "a valid header, no PixelData", ".dcm")
    add("dicom_preamble_only", b"\x00" * 128 + b"DICM", TRUNCATED, "preamble + magic, nothing else", ".dcm")
    add("png_header_bomb", png_header_bomb(), {"too_many_pixels"}, "IHDR 1000000 x 1000000, 80 bytes", ".png")
    add("png_huge_ihdr_max", png_header_bomb(0x7FFFFFFF, 0x7FFFFFFF), {"too_many_pixels", "corrupt_image"},
        "IHDR 2^31-1 squared", ".png")
    png = seed_files()["png_gray8"][0]
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # IHDR CRC
    add("png_bad_crc", bytes(bad_crc), {"corrupt_image"}, "IHDR CRC wrong", ".png")
    add("png_no_iend", png[:-12], {"truncated"}, "IEND chunk missing", ".png")
    add("png_chunk_length_huge", png[:33] + b"\x7f\xff\xff\xf0" + png[37:], {"truncated", "corrupt_image"},
        "IDAT length 2^31-16", ".png")
    add("png_signature_only", png[:8], {"truncated"}, "8-byte signature only", ".png")
    for name, (data, codes) in broken_jpegs().items():
        add(name, data, codes, "", ".jpg")
    add("zero_bytes", b"", {"empty_file"}, "0 bytes", ".dcm")
    add("zero_bytes_png", b"", {"empty_file"}, "0 bytes", ".png")
    add("text_named_png", b"patient notes\n", {"unsupported_format"}, "text with an image suffix", ".png")
    add("png_named_dcm", png, {"ok"}, "a PNG with a .dcm suffix (sniffed by content)", ".dcm")
    add("gif_named_jpg", b"GIF89a" + b"\x00" * 64, {"unsupported_format"}, "GIF magic", ".jpg")
    add("tiff_ifd_past_end", b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 32, {"truncated", "corrupt_image"},
        "TIFF first IFD offset 2^31-1", ".tif")
    add("bmp_huge", b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<IiiHHI", 40, 60000, 60000, 1, 24, 0)
        + b"\x00" * 24, {"too_many_pixels", "truncated"}, "BMP 60000 x 60000 in 70 bytes", ".bmp")
    add("webp_riff_lies", b"RIFF\xff\xff\xff\x7fWEBPVP8 " + b"\x00" * 24, {"truncated", "corrupt_image"},
        "RIFF size 2^31-1", ".webp")
    add("nifti_huge", _nifti_huge(), {"too_many_pixels", "truncated", "corrupt_image"},
        "NIfTI header 32767^3 voxels", ".nii")
    for h, w in ((1, 1), (1, 64), (64, 1)):  # valid images with nothing to hash: scanned, not filed
        add(f"png_{h}x{w}", _png_bytes(h, w), {"ok"}, f"a valid {h} x {w} PNG", ".png")
        cases[-1].index_codes = {"too_small"}
    sparse = root / "sparse_3g.png"
    with open(sparse, "wb") as fh:
        fh.truncate(3 << 30)  # sparse: no disk used; read whole, 3 GB of memory
    cases.append(Case("sparse_3g", sparse, {"too_large"}, "`truncate -s 3G`: over the 1 GiB --max-bytes default"))

    # not files: a folder named like an image, symlink loops, a link into nowhere
    folder = root / "folder.png"
    folder.mkdir()
    cases.append(Case("folder_named_png", folder, {"not_a_file"}, "a directory named folder.png"))
    loop = root / "loop_dir"
    loop.mkdir()
    os.symlink("..", loop / "up")
    cases.append(Case("symlink_dir_loop", loop / "up", {"symlink_loop"}, "loop_dir/up -> .. (a directory loop)",
                      named_codes={"not_a_file"}))  # named, it is a folder: never walked
    a, b = root / "link_a.dcm", root / "link_b.dcm"
    os.symlink(b.name, a)
    os.symlink(a.name, b)
    cases.append(Case("symlink_file_loop_a", a, {"symlink_loop"}, "link_a.dcm -> link_b.dcm -> link_a.dcm"))
    cases.append(Case("symlink_file_loop_b", b, {"symlink_loop"}, "link_b.dcm -> link_a.dcm -> link_b.dcm"))
    os.symlink("does-not-exist.png", root / "dangling.png")
    cases.append(Case("dangling_symlink", root / "dangling.png", {"not_found"}, "a link to a missing file"))
    fifo = root / "pipe.dcm"
    os.mkfifo(fifo)
    cases.append(Case("fifo", fifo, {"not_a_file"}, "a named pipe (would block a reader forever)"))
    os.symlink("/dev/zero", root / "zero.dcm")
    cases.append(Case("dev_zero_link", root / "zero.dcm", {"not_a_file"}, "a link to /dev/zero (endless bytes)",
                      named_codes={"outside_root"}))  # in a claims CSV, the link leads out of the CSV's folder
    # a name that is not UTF-8: os.fsencode-level bytes
    raw_name = os.path.join(os.fsencode(root), b"bad_\xff\xfe_name.png")
    with open(raw_name, "wb") as fh:
        fh.write(png)
    note = "file name bytes b'bad_\\xff\\xfe_name.png'"
    cases.append(Case("non_utf8_name", Path(os.fsdecode(raw_name)), {"ok"}, note))
    return cases


def _png_bytes(h: int, w: int) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", (np.arange(h * w, dtype=np.uint32).reshape(h, w) * 37 % 256).astype(np.uint8))
    assert ok
    return buf.tobytes()


def _without_pixels() -> Dataset:
    ds = small_dicom()
    del ds.PixelData
    return ds


def _nifti_huge() -> bytes:
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 4, 16)  # datatype int16, bitpix
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    hdr[344:348] = b"n+1\x00"
    return bytes(hdr) + b"\x00" * 64


def real_dicom_with_identity(**identity) -> bytes:
    """pydicom's CT example with identifying attributes replaced by ``identity`` (keyword -> value)."""
    ds = pydicom.dcmread(pydicom.examples.get_path("ct"))
    for key, value in identity.items():
        setattr(ds, key, value)
    return dicom_bytes(ds)


def copy_examples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(pydicom.examples.get_path(n), folder / f"{n}.dcm")) for n in ("ct", "mr")]


__all__ = ["Case", "build_corpus", "png_zlib_bomb", "real_dicom_with_identity"]
