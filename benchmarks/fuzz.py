"""Hardening runs: mutation fuzzing of scan, index add and screen; kill-and-resume of scan, screen and audit.

    python -m benchmarks.fuzz --seconds 600               # fuzz load() and Scanner.scan_file() for 10 minutes
    python -m benchmarks.fuzz --seconds 300 --target index   # the same inputs through `index add`'s filing
    python -m benchmarks.fuzz --seconds 300 --target screen  # filing under a claim + screening's scan
    python -m benchmarks.fuzz --seconds 0 --kill-resume 50  # 50 kill -9 / --resume cycles of `medaudit scan`
    python -m benchmarks.fuzz --seconds 0 --kill-resume-screen 20   # the same for `medaudit screen`
    python -m benchmarks.fuzz --seconds 0 --kill-audit 20  # kill `medaudit audit`, rerun, compare with a clean run
    python -m benchmarks.fuzz --seconds 0 --concurrent-index 20  # 8 processes create one new index at once
    python -m benchmarks.fuzz --seconds 0 --pathological  # seconds per parser on inputs built to be expensive

Seeds are real files (pydicom's example CT, MR, JPEG 2000 and RGB DICOMs) and files written here with OpenCV
(PNG 8/16-bit/RGB, JPEG, TIFF, BMP, WebP, NIfTI), plus PNGs with text/zTXt/iTXt/eXIf/caBX chunks and JPEGs with
EXIF, XMP, COM and APP11 (C2PA) segments, so the metadata parsers see well-formed input before it is broken.
Mutations: bit flips, truncation, byte insertion/deletion, overwrites with boundary values, splices, and
container-aware edits (PNG chunk bodies and lengths with the CRC fixed up, JPEG segment lengths, DICOM element
length fields), so that damage reaches past the first checksum.

The same seeds and mutators drive the CI tests (tests/hardening/test_fuzz.py, through hypothesis); this module is
the long run. A "crash" is anything but a clean result: an exception out of ``load`` other than InputError, an
exception out of ``scan_file``, an ``internal_error`` record, a record that is not valid JSON, or a metadata
parser that stopped on an exception (``file.malformed`` "metadata parser stopped"). Crashing inputs are written
to ``--crash-dir`` for replay.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------------- seeds

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def with_png_chunks(png: bytes, *chunks: bytes) -> bytes:
    """``png`` with ``chunks`` inserted before IEND."""
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + b"".join(chunks) + png[iend:]


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_jpeg_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """``jpeg`` with ``segments`` inserted right after SOI."""
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def exif_tiff(tags: dict[int, str]) -> bytes:
    """A little-endian TIFF/EXIF block with one IFD of ASCII tags (Make 0x010F, Model 0x0110, Software 0x0131)."""
    entries, data = b"", b""
    data_off = 8 + 2 + 12 * len(tags) + 4
    for tag in sorted(tags):
        value = tags[tag].encode("latin-1") + b"\x00"
        if len(value) <= 4:
            entries += struct.pack("<HHI", tag, 2, len(value)) + value.ljust(4, b"\x00")
        else:
            entries += struct.pack("<HHII", tag, 2, len(value), data_off + len(data))
            data += value + (b"\x00" if len(value) % 2 else b"")
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + b"\x00" * 4 + data


def xmp_packet(source_type: str = "trainedAlgorithmicMedia", creator_tool: str = "Midjourney") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f' Iptc4xmpExt:DigitalSourceType="{_IPTC}{source_type}" xmp:CreatorTool="{creator_tool}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def cbor(value) -> bytes:
    """Minimal CBOR encoder for str / int / list / dict (enough for C2PA test manifests)."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + struct.pack(">H", n)

    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, int):
        return head(0, value)
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


def box(tbox: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), tbox) + payload


def superbox(label: str, *children: bytes) -> bytes:
    return box(b"jumb", box(b"jumd", b"\x00" * 16 + b"\x03" + label.encode() + b"\x00") + b"".join(children))


def c2pa_store(generator: str = "TestTool/1.0", source_type: str = "trainedAlgorithmicMedia") -> bytes:
    """A minimal (unsigned) C2PA manifest store: actions with a digital source type and a claim generator."""
    action = {"action": "c2pa.created", "digitalSourceType": _IPTC + source_type}
    manifest = superbox(
        "urn:c2pa:00000000-0000-0000-0000-000000000001",
        superbox("c2pa.assertions", superbox("c2pa.actions.v2", box(b"cbor", cbor({"actions": [action]})))),
        superbox("c2pa.claim.v2", box(b"cbor", cbor({"claim_generator": generator}))),
        superbox("c2pa.signature", box(b"cbor", b"\xa0")),
    )
    return superbox("c2pa", manifest)


def app11_segments(store: bytes, split: int = 2) -> list[bytes]:
    """JPEG XT APP11 segments carrying ``store``; continuations repeat its 8-byte box header."""
    header, body = store[:8], store[8:]
    step = -(-len(body) // split)
    out = []
    for seq, i in enumerate(range(0, len(body), step), start=1):
        out.append(jpeg_segment(0xEB, b"JP" + struct.pack(">HI", 1, seq) + header + body[i : i + step]))
    return out


def _texture(h: int, w: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, channels)).astype(np.float32), (0, 0), 3)
    img = img.reshape(h, w, channels) if img.ndim == 2 else img
    img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
    return img[:, :, 0] if channels == 1 else img


def _encode(ext: str, img: np.ndarray, params: Sequence[int] = ()) -> bytes:
    import cv2

    ok, buf = cv2.imencode(ext, img, list(params))
    if not ok:
        raise RuntimeError(f"cv2 could not encode {ext}")
    return buf.tobytes()


@functools.lru_cache(maxsize=1)
def seed_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, file suffix) of every seed. Small (tens of kB) so that a mutation is cheap to scan."""
    import pydicom.examples

    seeds: dict[str, tuple[bytes, str]] = {}
    for name in ("ct", "mr", "jpeg2k", "rgb_color"):
        seeds[f"dicom_{name}"] = (Path(pydicom.examples.get_path(name)).read_bytes(), ".dcm")
    grey = (_texture(48, 64) * 255).astype(np.uint8)
    rgb = (_texture(40, 56, 3, seed=1) * 255).astype(np.uint8)
    grey16 = (_texture(32, 40, seed=2) * 65535).astype(np.uint16)
    seeds["png_gray8"] = (_encode(".png", grey), ".png")
    seeds["png_gray16"] = (_encode(".png", grey16), ".png")
    seeds["png_rgb"] = (_encode(".png", rgb), ".png")
    seeds["jpeg_gray"] = (_encode(".jpg", grey, [1, 90]), ".jpg")  # cv2.IMWRITE_JPEG_QUALITY == 1
    seeds["jpeg_rgb_progressive"] = (_encode(".jpg", rgb, [1, 75, 2, 1]), ".jpg")  # IMWRITE_JPEG_PROGRESSIVE == 2
    seeds["tiff_rgb"] = (_encode(".tif", rgb), ".tif")
    seeds["tiff_gray16"] = (_encode(".tif", grey16), ".tif")
    seeds["bmp_rgb"] = (_encode(".bmp", rgb), ".bmp")
    seeds["webp_lossy"] = (_encode(".webp", rgb, [64, 80]), ".webp")  # IMWRITE_WEBP_QUALITY == 64
    seeds["webp_lossless"] = (_encode(".webp", grey, [64, 101]), ".webp")
    a1111 = "chest x-ray\nNegative prompt: text\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd15"
    provenance = json.dumps({"generator": "ddpm", "version": "1", "seed": 3})
    seeds["png_text"] = (
        with_png_chunks(
            seeds["png_gray8"][0],
            png_chunk(b"tEXt", b"parameters\x00" + a1111.encode("latin-1")),
            png_chunk(b"zTXt", b"prompt\x00\x00" + zlib.compress(b'{"3": {"class_type": "KSampler"}}')),
            png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(xmp_packet().encode())),
            png_chunk(b"iTXt", b"medaudit:provenance\x00\x00\x00\x00\x00" + provenance.encode()),
            png_chunk(b"eXIf", exif_tiff({0x0131: "NovelAI", 0x010F: "Canon"})),
            png_chunk(b"caBX", c2pa_store("OpenAI-API")),
        ),
        ".png",
    )
    seeds["jpeg_meta"] = (
        with_jpeg_segments(
            seeds["jpeg_gray"][0],
            jpeg_segment(0xE1, b"Exif\x00\x00" + exif_tiff({0x010F: "Canon", 0x0110: "EOS 5D", 0x0131: "GIMP"})),
            jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet().encode()),
            jpeg_segment(0xFE, b"made with Stable Diffusion"),
            *app11_segments(c2pa_store("Adobe Firefly")),
        ),
        ".jpg",
    )
    seeds.update(signed_seeds(grey, rgb))
    try:
        import nibabel

        vol = nibabel.Nifti1Image((_texture(16, 16) * 1000).astype(np.int16)[:, :, None].repeat(3, 2), np.eye(4))
        seeds["nifti"] = (vol.to_bytes(), ".nii")
    except ImportError:  # pragma: no cover - nibabel is a dependency
        pass
    return seeds


def signed_seeds(grey: np.ndarray, rgb: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """A genuinely signed PNG (C2PA caBX), JPEG (C2PA APP11) and DICOM (PS3.15 Digital Signatures), so mutations
    reach the signature verifiers (the c2pa SDK and our DICOM MAC check) with structures that almost verify."""
    import tempfile

    from forensics.signatures import load_signing_key
    from forensics.signatures.c2pa_manifest import available
    from forensics.signatures.throwaway import make_chain
    from generators import provenance as stamp

    if not available():  # pragma: no cover - c2pa-python is a dependency
        return {}
    info = {"generator": "fuzz", "version": "1", "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        chain = make_chain(tmp)
        key = load_signing_key(chain["key"], chain["chain"])
    return {
        "png_signed": (stamp.sign(stamp.png_bytes(grey, info), "png", info, key), ".png"),
        "jpeg_signed": (stamp.sign(stamp.jpeg_bytes(rgb, info), "jpeg", info, key), ".jpg"),
        "dicom_signed": (stamp.sign(stamp.dicom_bytes(grey, info, bits=8), "dicom", info, key), ".dcm"),
    }


# --------------------------------------------------------------------------------------------------- mutations

# A mutation is (kind, a, b) with a, b in [0, 2**32): positions and values are taken modulo what fits, so the
# same tuples replay on any seed and hypothesis can shrink them.
MUTATIONS = (
    "bitflip",
    "truncate",
    "insert",
    "delete",
    "overwrite",
    "splice",
    "png_chunk_body",
    "png_chunk_length",
    "jpeg_segment_length",
    "dicom_length",
    "repeat",
)
_BOUNDARY = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
             0xFFFFFFFE, 0xFFFFFFFF)


@functools.cache
def pathological_cases() -> dict[str, tuple[Callable, object]]:
    """Name -> (parser, input) built to make a metadata parser do a lot of work (bombs, loops, deep nesting)."""
    from forensics.analyzers.metadata.c2pa import decode_cbor, read_jumbf
    from forensics.analyzers.metadata.containers import jpeg_evidence, png_evidence, tiff_evidence
    from forensics.analyzers.metadata.xmp import read_xmp

    mib = 1 << 20
    png, jpeg = seed_files()["png_gray8"][0], seed_files()["jpeg_gray"][0]
    loop_ifd = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<HHHII", 1, 0x8769, 4, 1, 8) + struct.pack("<I", 8)
    deep_jumbf = b""
    for _ in range(3000):
        deep_jumbf = struct.pack(">I4s", 8 + len(deep_jumbf), b"jumb") + deep_jumbf
    ztxt_bomb = zlib.compress(b"a" * (64 << 20), 9)  # 64 MiB of text in ~64 kB, 10 times
    ztxt = png_chunk(b"zTXt", b"prompt\x00\x00" + ztxt_bomb)
    xmp_segment = jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00DigitalSourceType" + b" " * 60000)
    return {
        "xmp DigitalSourceType repeated (1 MiB)": (read_xmp, ["DigitalSourceType" * (mib // 17)]),
        "xmp rdf:resource repeated": (read_xmp, ["DigitalSourceType" + "x" * 60 + "rdf:resource" * 80000]),
        "xmp IPTC URI repeated": (read_xmp, ["cv.iptc.org/newscodes/digitalsourcetype/" * 25000]),
        "EXIF IFD pointing at itself": (tiff_evidence, loop_ifd),
        "PNG with 100000 tEXt chunks": (png_evidence, with_png_chunks(png, *[png_chunk(b"tEXt", b"k\x00v")] * 100000)),
        "PNG zTXt bombs": (png_evidence, with_png_chunks(png, *[ztxt] * 10)),
        "JPEG with 100 XMP segments": (jpeg_evidence, with_jpeg_segments(jpeg, *[xmp_segment] * 100)),
        "JUMBF nested 3000 deep": (read_jumbf, deep_jumbf),
        "CBOR nested arrays": (decode_cbor, b"\x81" * 100000),
        "CBOR array of 2^64 items": (decode_cbor, b"\x9b" + b"\xff" * 8),
    }


def time_pathological() -> dict[str, float]:
    """Seconds each pathological case takes (the figure in docs/RELIABILITY.md; tests only catch hangs)."""
    out = {}
    for name, (parse, arg) in pathological_cases().items():
        start = time.perf_counter()
        parse(arg)
        out[name] = time.perf_counter() - start
    return out


def _png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of a PNG, as far as the lengths can be followed."""
    out, pos = [], 8
    while pos + 12 <= len(data) and len(out) < 256:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((pos, length))
        pos += 12 + length
    return out


def _jpeg_segments(data: bytes) -> list[int]:
    """Offsets of JPEG marker segments that carry a length (up to the first scan)."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and len(out) < 256:
        marker = data[pos + 1]
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            break
        out.append(pos)
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return out


def mutate(data: bytes, ops: Sequence[tuple[int, int, int]], others: Sequence[bytes] = ()) -> bytes:
    """Apply mutations ``ops`` (see :data:`MUTATIONS`) to ``data``; ``others`` feed splices."""
    buf = bytearray(data)
    for kind, a, b in ops:
        name = MUTATIONS[kind % len(MUTATIONS)]
        n = len(buf)
        if name == "bitflip" and n:
            buf[a % n] ^= 1 << (b % 8)
        elif name == "truncate":
            del buf[a % (n + 1) :]
        elif name == "insert":
            buf[a % (n + 1) : a % (n + 1)] = (b.to_bytes(4, "little") * (1 + b % 7))[: 1 + b % 24]
        elif name == "delete" and n:
            del buf[a % n : a % n + 1 + b % 64]
        elif name == "overwrite" and n:
            value = _BOUNDARY[b % len(_BOUNDARY)]
            width = (1, 2, 4)[(b >> 8) % 3]
            order = "little" if (b >> 12) & 1 else "big"
            pos = a % n
            buf[pos : pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
        elif name == "splice" and others:
            src = others[b % len(others)]
            if src:
                start = (b >> 4) % len(src)
                piece = src[start : start + 1 + (a >> 8) % 512]
                buf[a % (n + 1) : a % (n + 1)] = piece
        elif name == "png_chunk_body" and buf.startswith(b"\x89PNG"):
            chunks = [(p, ln) for p, ln in _png_chunks(bytes(buf)) if p + 12 + ln <= n]
            if chunks:
                pos, length = chunks[a % len(chunks)]
                if length:
                    i = pos + 8 + b % length
                    buf[i] ^= 1 << ((b >> 16) % 8)
                    body = bytes(buf[pos + 4 : pos + 8 + length])
                    buf[pos + 8 + length : pos + 12 + length] = struct.pack(">I", zlib.crc32(body))
        elif name == "png_chunk_length" and buf.startswith(b"\x89PNG"):
            chunks = _png_chunks(bytes(buf))
            if chunks:
                pos, _ = chunks[a % len(chunks)]
                buf[pos : pos + 4] = struct.pack(">I", _BOUNDARY[b % len(_BOUNDARY)] if b & 1 else b % (n + 64))
        elif name == "jpeg_segment_length" and buf.startswith(b"\xff\xd8"):
            segments = _jpeg_segments(bytes(buf))
            if segments:
                pos = segments[a % len(segments)]
                buf[pos + 2 : pos + 4] = struct.pack(">H", _BOUNDARY[b % len(_BOUNDARY)] & 0xFFFF)
        elif name == "dicom_length" and n > 140:
            # an explicit-VR element length (2 bytes after a 2-letter VR) or a 4-byte length near a tag
            pos = 132 + a % (n - 140)
            while pos + 8 < n and not (bytes(buf[pos + 4 : pos + 6]).isalpha() and buf[pos + 4 : pos + 6].isupper()):
                pos += 2
            if pos + 8 < n:
                value = _BOUNDARY[b % len(_BOUNDARY)]
                if bytes(buf[pos + 4 : pos + 6]) in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OF", b"UC", b"UR"):
                    buf[pos + 8 : pos + 12] = struct.pack("<I", value & 0xFFFFFFFF)
                else:
                    buf[pos + 6 : pos + 8] = struct.pack("<H", value & 0xFFFF)
        elif name == "repeat" and n:
            start = a % n
            piece = bytes(buf[start : start + 1 + b % 256])
            buf[start:start] = piece * (1 + (b >> 8) % 16)
    return bytes(buf)


def random_ops(rng: random.Random, max_ops: int = 4) -> list[tuple[int, int, int]]:
    n = rng.randint(1, max_ops)
    return [(rng.randrange(len(MUTATIONS)), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(n)]


# --------------------------------------------------------------------------------------------------- checks


def check_load(path: str) -> str | None:
    """None when ``forensics.io.load`` behaves (returns, or raises InputError); else what went wrong."""
    from forensics.errors import ERROR_CODES, InputError
    from forensics.io import load

    try:
        image = load(path)
    except InputError as exc:
        return None if exc.code in ERROR_CODES and exc.code != "internal_error" else f"bad code {exc.code}"
    except Exception as exc:  # noqa: BLE001 - this is what we are looking for
        return f"load raised {type(exc).__name__}: {exc}"[:300]
    px = image.pixels
    if px.dtype != np.float32 or px.ndim not in (2, 3) or px.size == 0:
        return f"load returned pixels {px.dtype} {px.shape}"
    if not np.isfinite(px).all() or px.min() < 0 or px.max() > 1:
        return "load returned pixels outside [0, 1] or not finite"
    return None


def check_scan(scanner, path: str, outcomes: dict[str, int] | None = None, claim_id: str | None = None) -> str | None:
    """None when ``Scanner.scan_file`` gives a clean record; else what went wrong. ``outcomes`` counts codes;
    ``claim_id`` scans as `screen` does (the reuse analyzer then ignores the image's own claim)."""
    from forensics.errors import ERROR_CODES

    try:
        result = scanner.scan_file(path, claim_id)
    except Exception as exc:  # noqa: BLE001
        return f"scan_file raised {type(exc).__name__}: {exc}"[:300]
    if outcomes is not None:
        key = "ok" if result.status == "ok" else (result.error.code if result.error else "?")
        outcomes[key] = outcomes.get(key, 0) + 1
    if result.status not in ("ok", "error"):
        return f"status {result.status!r}"
    if result.status == "error":
        code = result.error.code if result.error else None
        if code not in ERROR_CODES:
            return f"unknown error code {code!r}"
        if code == "internal_error":
            return f"internal_error: {result.error.message}"[:300]
    else:
        unscored = result.level == "unscored" and result.risk is None  # no pixel analyzer could assess it
        if not unscored and (result.risk is None or not 0 <= result.risk <= 1
                             or result.level not in ("low", "medium", "high")):
            return f"ok record with risk {result.risk!r} level {result.level!r}"
        for finding in result.findings:
            for ev in finding.evidence:
                if ev.code == "file.malformed" and "metadata parser stopped" in ev.message:
                    return f"analyzer {finding.analyzer}: {ev.message}"
    try:
        json.dumps(result.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"record is not JSON: {exc}"
    return None


def check_index(db: str, path: str, claim_id: str, outcomes: dict[str, int] | None = None) -> str | None:
    """None when filing ``path`` in the reuse index (``reuse.add_files``: what `index add` and `screen` run) counts
    it once, as added, a duplicate or an error record with a known code other than internal_error."""
    from forensics.errors import ERROR_CODES
    from forensics.reuse import add_files

    try:
        out = add_files(db, [path], claim_id, timeout_s=10.0)
    except Exception as exc:  # noqa: BLE001
        return f"add_files raised {type(exc).__name__}: {exc}"[:300]
    if out["added"] + out["skipped_duplicates"] + len(out["errors"]) != 1:
        return f"add_files counted {out}"[:300]
    if outcomes is not None:
        key = out["errors"][0]["code"] if out["errors"] else "filed"
        outcomes[key] = outcomes.get(key, 0) + 1
    for error in out["errors"]:
        if error["code"] not in ERROR_CODES:
            return f"unknown error code {error['code']!r}"
        if error["code"] == "internal_error":
            return f"internal_error: {error['message']}"[:300]
    return None


def check_parsers(data: bytes) -> str | None:
    """The metadata container parsers on raw bytes (whatever the format): they must never raise."""
    from forensics.analyzers.metadata.containers import jpeg_evidence, png_evidence, tiff_evidence, webp_evidence

    for fn in (png_evidence, jpeg_evidence, tiff_evidence, webp_evidence):
        if fn is tiff_evidence and data[:4] not in (b"II*\x00", b"MM\x00*"):
            continue
        try:
            fn(data)
        except Exception as exc:  # noqa: BLE001
            return f"{fn.__name__} raised {type(exc).__name__}: {exc}"[:300]
    return None


# --------------------------------------------------------------------------------------------------- fuzz loop


class _quiet_stderr:
    """Send file descriptor 2 to /dev/null: libjpeg and OpenCV print a line per damaged file."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False


TARGETS = ("scan", "index", "screen")
_INDEX_ROTATE = 2000  # inputs per reuse index: a fresh one keeps the index-wide queries of `screen` at batch size


class _Targets:
    """What one fuzzed input goes through, per target: ``scan`` (load, Scanner.scan_file, the metadata parsers),
    ``index`` (filing, as `index add`) or ``screen`` (filing under a claim, then the scan `screen` runs: every
    analyzer, the reuse one against the index)."""

    def __init__(self, target: str, tmp: str):
        if target not in TARGETS:
            raise ValueError(f"unknown fuzz target {target!r}; choose one of {TARGETS}")
        self.target, self.tmp, self.filed = target, tmp, 0
        self.scanner = None
        if target == "scan":
            from forensics.scanner import Scanner, ScanOptions

            self.scanner = Scanner(ScanOptions(timeout_s=10.0))
        else:
            self._new_index()

    def _new_index(self) -> None:
        from forensics.analyzers import list_analyzers
        from forensics.reuse import ReuseIndex
        from forensics.scanner import Scanner, ScanOptions

        self.db = os.path.join(self.tmp, f"reuse-{self.filed}.sqlite")
        ReuseIndex(self.db).close()
        if self.target == "screen":
            self.scanner = Scanner(ScanOptions(timeout_s=10.0, analyzers=list_analyzers(), index_path=self.db))

    def check(self, path: str, data: bytes, outcomes: dict[str, int]) -> list[tuple[str, str | None]]:
        if self.target == "scan":
            return [("load", check_load(path)), ("scan", check_scan(self.scanner, path, outcomes)),
                    ("parsers", check_parsers(data))]
        self.filed += 1
        if self.filed % _INDEX_ROTATE == 0:
            os.unlink(self.db)
            self._new_index()
        claim = f"claim-{self.filed % 7}"  # a few claims: copies across claims are found, within one skipped
        checks = [("index", check_index(self.db, path, claim, outcomes if self.target == "index" else None))]
        if self.target == "screen":
            checks.append(("screen", check_scan(self.scanner, path, outcomes, claim)))
        return checks


def fuzz(seconds: float, seed: int = 0, crash_dir: Path | None = None, log: Callable[[str], None] = print,
         target: str = "scan") -> dict:
    """Mutate seeds for ``seconds`` and put each through ``target`` (see TARGETS). Returns the counts and
    ``peak_rss_mb``, this process's peak resident memory."""
    import resource

    rng = random.Random(seed)
    seeds = seed_files()
    names = sorted(seeds)
    others = [seeds[n][0] for n in names]
    stats = {"target": target, "inputs": 0, "crashes": 0, "seconds": 0.0, "by_kind": {}, "unique": {},
             "outcomes": {}}
    with tempfile.TemporaryDirectory(prefix="medaudit-fuzz-") as tmp, _quiet_stderr():
        checks = _Targets(target, tmp)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            name = names[rng.randrange(len(names))]
            data, suffix = seeds[name]
            ops = random_ops(rng)
            mutated = mutate(data, ops, others)
            path = os.path.join(tmp, "input" + suffix)
            with open(path, "wb") as fh:
                fh.write(mutated)
            stats["inputs"] += 1
            for what, problem in checks.check(path, mutated, stats["outcomes"]):
                if problem is None:
                    continue
                stats["crashes"] += 1
                stats["by_kind"][what] = stats["by_kind"].get(what, 0) + 1
                key = f"{what}: {problem.split(':')[0]}"
                first = key not in stats["unique"]
                stats["unique"].setdefault(key, {"count": 0, "seed": name, "ops": ops, "problem": problem})
                stats["unique"][key]["count"] += 1
                if crash_dir is not None:
                    crash_dir.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256(mutated).hexdigest()[:12]
                    (crash_dir / f"{what}-{name}-{digest}{suffix}").write_bytes(mutated)
                if first:
                    log(f"CRASH {key}  seed={name} ops={ops}\n    {problem}")
    stats["seconds"] = round(time.monotonic() - start, 1)
    stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return stats


# --------------------------------------------------------------------------------------------------- kill and resume


def medaudit_command() -> list[str]:
    """How to run the CLI as a child process: the console script beside this interpreter, else ``cli.main``."""
    script = Path(sys.executable).with_name("medaudit")
    if script.exists():
        return [str(script)]
    found = shutil.which("medaudit")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys, cli; sys.argv[0] = 'medaudit'; cli.main()"]


def build_real_folder(root: Path, n: int = 150, seed: int = 0) -> list[Path]:
    """``n`` real-ish inputs in nested folders: copies of pydicom's examples and generated PNGs/JPEGs."""
    import cv2
    import pydicom.examples

    rng = np.random.default_rng(seed)
    dicoms = [Path(pydicom.examples.get_path(name)) for name in ("ct", "mr", "rgb_color")]
    files = []
    for i in range(n):
        sub = root / f"claim_{i % 7:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        kind = i % 3
        if kind == 0:
            path = sub / f"img_{i:04d}.dcm"
            shutil.copyfile(dicoms[i % len(dicoms)], path)
        else:
            img = (np.clip(rng.normal(0.5, 0.15, (48, 48)), 0, 1) * 255).astype(np.uint8)
            path = sub / f"img_{i:04d}.{'png' if kind == 1 else 'jpg'}"
            cv2.imwrite(str(path), img)
        files.append(path)
    return files


def _read_jsonl(path: Path) -> list[dict]:
    """Every line must be whole JSON (raises otherwise)."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path} does not end with a newline"
    return [json.loads(line) for line in text.splitlines()]


_ENV = dict(os.environ, OMP_NUM_THREADS="1")


KILLS = ("group", "main")  # SIGKILL the whole process group (as the OOM killer might), or the main process alone
SURVIVOR_GRACE_S = 15.0  # how long the run's other processes get to exit after the kill (workers poll every 1 s)


def run_processes(pgid: int) -> set[int]:
    """Live processes of process group ``pgid`` (zombies, dead but not yet reaped, do not count). Linux /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def survivors_of(pgid: int, grace: float = SURVIVOR_GRACE_S) -> int:
    """Processes of the killed run still alive after ``grace`` seconds; they are then killed, and counted."""
    deadline = time.monotonic() + grace
    while (alive := run_processes(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(alive)


def _kill(proc: subprocess.Popen, target: str) -> None:
    if target == "group":
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers, as a crash or OOM kill would
    elif target == "main":
        os.kill(proc.pid, signal.SIGKILL)  # the main process alone: its workers must notice and exit
    else:
        raise ValueError(f"unknown kill target {target!r}; choose one of {KILLS}")


def _run_and_kill(cmd: list[str], partial: Path, kill_after: int, timeout: float,
                  target: str = "group") -> tuple[int | None, int]:
    """Run ``cmd`` in its own process group; SIGKILL it (``target``) once ``partial`` holds ``kill_after`` lines.

    Returns the line count seen at the kill (None when the run finished first) and the number of the run's
    processes still alive afterwards (see ``survivors_of``).
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV,
                            start_new_session=True)
    killed_at = None
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            lines = partial.read_bytes().count(b"\n")
        except FileNotFoundError:
            lines = 0
        if lines >= kill_after:
            _kill(proc, target)
            killed_at = lines
            break
        time.sleep(0.005)
    if proc.poll() is None and killed_at is None:  # pragma: no cover - the run hung
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return killed_at, survivors_of(proc.pid)


def _resume(cmd: list[str], timeout: float) -> None:
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, timeout=timeout, env=_ENV)
    if resumed.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} --resume exited {resumed.returncode}: "
                           f"{resumed.stderr.decode(errors='replace')[-2000:]}")


def comparable(records: list[dict]) -> dict[tuple, dict]:
    """Records keyed by (claim_id, path), without what differs between identical runs: the timing, and the salt of
    redacted identifiers (``redacted:<hash>``, salted per run so that reports cannot be linked)."""

    def same(value):
        if isinstance(value, dict):
            return {k: same(v) for k, v in value.items()}
        return "redacted" if isinstance(value, str) and value.startswith("redacted:") else value

    return {(r.get("claim_id"), r["path"]): same({k: v for k, v in r.items() if k != "elapsed_ms"}) for r in records}


def kill_resume_once(folder: Path, out: Path, kill_after: int, workers: int = 2, timeout: float = 120.0,
                     target: str = "group", reference: list[dict] | None = None) -> dict:
    """Start ``medaudit scan folder -o out``, SIGKILL it once ``out.partial`` holds ``kill_after`` lines, resume.

    ``target`` is what is killed: the process ``group`` or the ``main`` process alone (see KILLS). Returns a dict
    with ``inputs``, ``records``, ``lost`` (inputs with no record), ``duplicated`` (more than one), ``killed_at``
    (lines seen when killed, or None when the run finished first), ``survivors`` (processes of the killed run
    still alive after it), ``partial_left`` (a .partial still there at the end) and ``differ`` (records unlike
    those of ``reference``, a clean run's records; 0 without one).
    """
    partial = out.with_name(out.name + ".partial")
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    inputs = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    cmd = [*medaudit_command(), "scan", str(folder), "-o", str(out), "--workers", str(workers), "-q"]
    killed_at, survivors = _run_and_kill(cmd, partial, kill_after, timeout, target)
    after_kill = {"final": out.exists(), "partial": partial.exists()}
    if after_kill["final"]:  # renamed before the kill landed: then it must be whole
        complete = len(_read_jsonl(out)) == len(inputs)
    else:
        complete = None
    _resume(cmd, timeout)
    records = _read_jsonl(out)
    seen: dict[str, int] = {}
    for r in records:
        seen[r["path"]] = seen.get(r["path"], 0) + 1
    return {
        "inputs": len(inputs),
        "records": len(records),
        "lost": sorted(set(inputs) - set(seen)),
        "duplicated": sorted(p for p, c in seen.items() if c > 1),
        "unexpected": sorted(set(seen) - set(inputs)),
        "killed_at": killed_at,
        "survivors": survivors,
        "after_kill": after_kill,
        "final_complete_after_kill": complete,
        "partial_left": partial.exists(),
        "differ": _differ(comparable(records), comparable(reference)) if reference is not None else 0,
    }


def _differ(got: dict, want: dict) -> int:
    return sum(got.get(k) != v for k, v in want.items()) + len(set(got) - set(want))


def build_claims(root: Path, n: int = 90, claims: int = 30, seed: int = 0) -> Path:
    """``claims.csv`` (claim_id, path) over ``n`` distinct noise PNGs, spread over ``claims`` claims."""
    import cv2

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["claim_id,path"]
    for i in range(n):
        img = (rng.random((64, 64)) * 255).astype(np.uint8)  # noise: no two images alike, no reuse hits expected
        path = root / f"img_{i:04d}.png"
        cv2.imwrite(str(path), img)
        rows.append(f"C{i % claims:04d},{path}")
    csv_path = root / "claims.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


def _summaries(out: Path) -> dict[str, tuple]:
    return {c["claim_id"]: (c["images"], c["errors"], c["level"], len(c.get("reuse_hits") or []))
            for c in _read_jsonl(out / "claims.jsonl")}


def kill_resume_screen_once(claims_csv: Path, out: Path, kill_after: int, workers: int = 2,
                            timeout: float = 120.0, target: str = "group", reference: Path | None = None) -> dict:
    """`medaudit screen` killed with SIGKILL (``target``) once images.jsonl.partial has ``kill_after`` lines, resumed.

    Returns ``inputs``, ``records``, ``lost``, ``duplicated`` ((claim, path) pairs), ``killed_at``, ``survivors``,
    ``claims`` (the per-claim summaries: images, errors, level, number of reuse hits) and, given ``reference`` (the
    --out folder of an uninterrupted run), ``differ``: image records and claim summaries unlike the reference's.
    """
    shutil.rmtree(out, ignore_errors=True)
    partial = out / "images.jsonl.partial"
    lines = claims_csv.read_text().splitlines()[1:]
    pairs = {tuple(line.split(",", 1)) for line in lines}
    cmd = [*medaudit_command(), "screen", str(claims_csv), "--out", str(out), "--workers", str(workers), "-q"]
    killed_at, survivors = _run_and_kill(cmd, partial, kill_after, timeout, target)
    _resume(cmd, timeout)
    records = _read_jsonl(out / "images.jsonl")
    got: dict[tuple, int] = {}
    for r in records:
        key = (r.get("claim_id"), r["path"])
        got[key] = got.get(key, 0) + 1
    claims = _summaries(out)
    differ = 0
    if reference is not None:
        want = _summaries(reference)
        differ = _differ(comparable(records), comparable(_read_jsonl(reference / "images.jsonl"))) + _differ(
            claims, want)
    return {
        "inputs": len(pairs),
        "records": len(records),
        "lost": sorted(pairs - set(got)),
        "duplicated": sorted(k for k, c in got.items() if c > 1),
        "killed_at": killed_at,
        "survivors": survivors,
        "claims": claims,
        "partial_left": partial.exists(),
        "differ": differ,
    }


def kill_audit_once(folder: Path, out: Path, delay: float, workers: int = 2, timeout: float = 120.0,
                    target: str = "group", reference: Path | None = None) -> dict:
    """`medaudit audit folder --out out` SIGKILLed (``target``) after ``delay`` seconds, then run again.

    audit has no --resume: a kill must leave the previous report set whole (or none), and the rerun must give the
    clean run's results. Returns ``killed`` (the run was still going), ``survivors``, ``torn`` (report.html/json/csv
    not whole after the kill), ``records``, ``differ`` (results unlike ``reference``'s report.json, a clean run).
    """
    cmd = [*medaudit_command(), "audit", str(folder), "--out", str(out), "--workers", str(workers), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        _kill(proc, target)
        killed = True
    proc.wait(timeout=30)
    survivors = survivors_of(proc.pid)
    torn = False
    if (out / "report.json").exists():
        try:
            json.loads((out / "report.json").read_text(encoding="utf-8"))
            torn = not (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
            torn |= not (out / "report.csv").read_text(encoding="utf-8").endswith("\n")
        except (ValueError, OSError):
            torn = True
    rerun = subprocess.run(cmd, capture_output=True, timeout=timeout, env=_ENV)
    if rerun.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {rerun.returncode}: "
                           f"{rerun.stderr.decode(errors='replace')[-2000:]}")
    results = json.loads((out / "report.json").read_text(encoding="utf-8"))["results"]
    differ = 0
    if reference is not None:
        want = json.loads((reference / "report.json").read_text(encoding="utf-8"))["results"]
        differ = _differ(comparable(results), comparable(want))
    return {"killed": killed, "survivors": survivors, "torn": torn, "records": len(results), "differ": differ}


def kill_resume(runs: int, n_files: int = 150, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """``runs`` kill-and-resume cycles of `medaudit scan -j 2`, killing the group and the main process alone in
    turn, each compared with a clean run."""
    rng = random.Random(seed)
    totals = {"runs": 0, "killed": 0, "inputs": 0, "lost": 0, "duplicated": 0, "partial_left": 0, "torn": 0,
              "survivors": 0, "differ": 0}
    with tempfile.TemporaryDirectory(prefix="medaudit-killresume-") as tmp:
        folder = Path(tmp) / "inputs"
        build_real_folder(folder, n_files, seed)
        clean = subprocess.run([*medaudit_command(), "scan", str(folder), "-q"], check=True, capture_output=True,
                               timeout=600, env=_ENV)
        reference = [json.loads(line) for line in clean.stdout.decode().splitlines()]
        for i in range(runs):
            target = KILLS[i % len(KILLS)]
            stats = kill_resume_once(folder, Path(tmp) / "out.jsonl", kill_after=rng.randint(1, n_files - 1),
                                     target=target, reference=reference)
            totals["runs"] += 1
            totals["killed"] += stats["killed_at"] is not None
            totals["inputs"] += stats["inputs"]
            totals["lost"] += len(stats["lost"])
            totals["duplicated"] += len(stats["duplicated"])
            totals["partial_left"] += stats["partial_left"]
            totals["survivors"] += stats["survivors"]
            totals["differ"] += stats["differ"]
            after = stats["after_kill"]
            totals["torn"] += (after["final"] and after["partial"]) or stats["final_complete_after_kill"] is False
            log(f"scan run {i + 1}/{runs} (kill {target}): killed at {stats['killed_at']} lines; {stats['records']}/"
                f"{stats['inputs']} records, lost {len(stats['lost'])}, duplicated {len(stats['duplicated'])}, "
                f"surviving processes {stats['survivors']}, records unlike a clean run {stats['differ']}")
    return totals


def kill_resume_screen(runs: int, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """``runs`` kill-and-resume cycles of `medaudit screen -j 2` (group and main process alone in turn), each
    compared with an uninterrupted run."""
    rng = random.Random(seed)
    totals = {"runs": 0, "killed": 0, "inputs": 0, "lost": 0, "duplicated": 0, "partial_left": 0, "survivors": 0,
              "differ": 0}
    with tempfile.TemporaryDirectory(prefix="medaudit-killscreen-") as tmp:
        claims_csv = build_claims(Path(tmp) / "inputs", seed=seed)
        reference = Path(tmp) / "ref"
        subprocess.run([*medaudit_command(), "screen", str(claims_csv), "--out", str(reference), "-q"],
                       check=True, capture_output=True, timeout=300, env=_ENV)
        for i in range(runs):
            target = KILLS[i % len(KILLS)]
            stats = kill_resume_screen_once(claims_csv, Path(tmp) / "out", kill_after=rng.randint(1, 89),
                                            target=target, reference=reference)
            totals["runs"] += 1
            totals["killed"] += stats["killed_at"] is not None
            totals["inputs"] += stats["inputs"]
            totals["lost"] += len(stats["lost"])
            totals["duplicated"] += len(stats["duplicated"])
            totals["partial_left"] += stats["partial_left"]
            totals["survivors"] += stats["survivors"]
            totals["differ"] += stats["differ"]
            log(f"screen run {i + 1}/{runs} (kill {target}): killed at {stats['killed_at']} lines; "
                f"{stats['records']}/{stats['inputs']} records, lost {len(stats['lost'])}, duplicated "
                f"{len(stats['duplicated'])}, surviving processes {stats['survivors']}, records and claim summaries "
                f"unlike an uninterrupted run {stats['differ']}")
    return totals


def kill_audit(runs: int, n_files: int = 40, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """``runs`` kills of `medaudit audit -j 2` at random moments (group and main process alone in turn), each
    followed by a rerun compared with a clean run."""
    rng = random.Random(seed)
    totals = {"runs": 0, "killed": 0, "survivors": 0, "torn": 0, "differ": 0}
    with tempfile.TemporaryDirectory(prefix="medaudit-killaudit-") as tmp:
        folder = Path(tmp) / "inputs"
        build_real_folder(folder, n_files, seed)
        reference = Path(tmp) / "ref"
        start = time.monotonic()
        subprocess.run([*medaudit_command(), "audit", str(folder), "--out", str(reference), "--workers", "2", "-q"],
                       check=True, capture_output=True, timeout=600, env=_ENV)
        full = time.monotonic() - start
        for i in range(runs):
            target = KILLS[i % len(KILLS)]
            stats = kill_audit_once(folder, Path(tmp) / "out", delay=full * rng.uniform(0.1, 0.95), target=target,
                                    reference=reference)
            totals["runs"] += 1
            for key in ("killed", "survivors", "torn", "differ"):
                totals[key] += stats[key]
            log(f"audit run {i + 1}/{runs} (kill {target}): killed {stats['killed']}, surviving processes "
                f"{stats['survivors']}, torn report {stats['torn']}, results unlike a clean run {stats['differ']}")
    return totals


_BARRIER = None


def _start_together(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _fill_index(args: tuple[str, list[str], str]) -> tuple[int, int, str | None]:
    from forensics.reuse import add_paths

    db, files, claim = args
    _BARRIER.wait()  # every process opens the new database at the same moment
    try:
        out = add_paths(db, files, claim)
        return out["added"], len(out["errors"]), None
    except Exception as exc:  # noqa: BLE001 - counted: this is what the figure is about
        return 0, 0, repr(exc)


def concurrent_index(trials: int, processes: int = 8, per_process: int = 4, seed: int = 0) -> dict:
    """``processes`` processes create and fill one NEW reuse index at once, ``trials`` times. Returns the counts of
    exceptions, error records, images not filed exactly once and failed ``PRAGMA integrity_check``."""
    import multiprocessing as mp
    import sqlite3
    from collections import Counter

    import cv2

    totals = {"trials": trials, "processes": processes, "exceptions": 0, "errors": 0, "misfiled": 0, "corrupt": 0}
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(seed)
        files = []
        for i in range(processes * per_process):
            files.append(os.path.join(tmp, f"{i}.png"))
            cv2.imwrite(files[-1], (rng.random((64, 64)) * 255).astype(np.uint8))
        for trial in range(trials):
            db = os.path.join(tmp, f"new{trial}.sqlite")
            barrier = ctx.Barrier(processes)
            with ctx.Pool(processes, initializer=_start_together, initargs=(barrier,)) as pool:
                parts = [(db, files[k * per_process:(k + 1) * per_process], f"claim-{k}") for k in range(processes)]
                results = pool.map(_fill_index, parts)
            totals["exceptions"] += sum(exc is not None for *_, exc in results)
            totals["errors"] += sum(errors for _, errors, _ in results)
            with sqlite3.connect(db) as conn:
                filed = Counter(row[0] for row in conn.execute("SELECT path FROM images"))
                totals["misfiled"] += sum(filed[f] != 1 for f in files)
                totals["corrupt"] += conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="fuzzing time (0: no fuzzing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"), help="where crashing inputs go")
    parser.add_argument("--target", choices=TARGETS, default="scan",
                        help="what each input goes through: scan (load, scan, parsers), index (`index add`'s filing) "
                             "or screen (filing under a claim, then screening's scan against the index)")
    parser.add_argument("--kill-resume", type=int, default=0, metavar="N",
                        help="also run N kill-and-resume cycles of `medaudit scan`")
    parser.add_argument("--kill-resume-screen", type=int, default=0, metavar="N",
                        help="also run N kill-and-resume cycles of `medaudit screen`")
    parser.add_argument("--kill-audit", type=int, default=0, metavar="N",
                        help="also kill `medaudit audit` N times and rerun it")
    parser.add_argument("--concurrent-index", type=int, default=0, metavar="N",
                        help="also create and fill one new reuse index from 8 processes at once, N times")
    parser.add_argument("--pathological", action="store_true",
                        help="also time the parsers on inputs built to make them work hard")
    args = parser.parse_args(argv)
    failed = False
    if args.pathological:
        for name, seconds in time_pathological().items():
            print(f"pathological: {seconds:7.3f} s  {name}")
    if args.seconds > 0:
        stats = fuzz(args.seconds, args.seed, args.crash_dir, target=args.target)
        rate = stats["inputs"] / max(stats["seconds"], 1e-9)
        print(f"fuzz {args.target}: {stats['inputs']} inputs tried in {stats['seconds']} s ({rate:.0f}/s), "
              f"{stats['crashes']} crashes ({len(stats['unique'])} distinct), {stats['outcomes'].get('timeout', 0)} "
              f"timeouts, peak RSS {stats['peak_rss_mb']} MB")
        print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["outcomes"].items(), key=lambda t: -t[1])))
        for key, info in stats["unique"].items():
            print(f"  {info['count']:>6}  {key}  (first: seed {info['seed']}, ops {info['ops']})")
        failed |= stats["crashes"] > 0
    if args.kill_resume:
        totals = kill_resume(args.kill_resume, seed=args.seed)
        print(f"kill-resume scan: {totals['runs']} runs ({totals['killed']} killed mid-run), {totals['inputs']} "
              f"inputs, {totals['lost']} lost, {totals['duplicated']} duplicated, {totals['partial_left']} .partial "
              f"left, {totals['torn']} half-written outputs, {totals['survivors']} surviving processes, "
              f"{totals['differ']} records unlike a clean run")
        failed |= any(totals[k] for k in ("lost", "duplicated", "partial_left", "torn", "survivors", "differ"))
    if args.kill_resume_screen:
        totals = kill_resume_screen(args.kill_resume_screen, seed=args.seed)
        print(f"kill-resume screen: {totals['runs']} runs ({totals['killed']} killed mid-run), {totals['inputs']} "
              f"inputs, {totals['lost']} lost, {totals['duplicated']} duplicated, {totals['partial_left']} .partial "
              f"left, {totals['survivors']} surviving processes, {totals['differ']} records or claim summaries unlike "
              f"a clean run")
        failed |= any(totals[k] for k in ("lost", "duplicated", "partial_left", "survivors", "differ"))
    if args.kill_audit:
        totals = kill_audit(args.kill_audit, seed=args.seed)
        print(f"kill audit: {totals['runs']} runs ({totals['killed']} killed mid-run), {totals['survivors']} "
              f"surviving processes, {totals['torn']} torn reports, {totals['differ']} results unlike a clean run")
        failed |= any(totals[k] for k in ("survivors", "torn", "differ"))
    if args.concurrent_index:
        totals = concurrent_index(args.concurrent_index, seed=args.seed)
        print(f"concurrent index: {totals['trials']} trials x {totals['processes']} processes, {totals['exceptions']} "
              f"exceptions, {totals['errors']} error records, {totals['misfiled']} images not filed exactly once, "
              f"{totals['corrupt']} failed integrity checks")
        failed |= any(totals[k] for k in ("exceptions", "errors", "misfiled", "corrupt"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
