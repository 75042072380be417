"""The demo folder: real scanner files that ship inside installed packages, beside synthetic and broken ones.

Real: DICOMs from pydicom's examples and nibabel's test data (acquired on real CT/MR scanners).
Synthetic: samples of every bundled generator (stamped as they always are, plus copies stripped of their labels
and re-encoded, which only the pixel watermark betrays), and PNG/JPEG files carrying the metadata that popular
image generators write. Broken: a truncated DICOM and a text file, to show error records.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

_PYDICOM_EXAMPLES = ("ct", "mr", "jpeg2k", "rgb_color")
_NIBABEL_FILES = ("0.dcm", "decimal_rescale.dcm", "philips_mprage.dcm.gz")


def build_demo_set(out: str | Path, n_per_generator: int = 2, seed: int = 0) -> list[Path]:
    """Fill ``out`` (created) with the demo inputs; returns the files written."""
    out = Path(out)
    for sub in ("real", "synthetic", "broken"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    files = _real_files(out / "real")
    files += _generator_samples(out / "synthetic", n_per_generator, seed)
    files += _signature_files(out / "synthetic", seed)
    files += _broken_files(out / "broken", files[0])
    return files


def _real_files(out: Path) -> list[Path]:
    import nibabel
    import pydicom.examples

    files = []
    for name in _PYDICOM_EXAMPLES:
        src = Path(pydicom.examples.get_path(name))
        files.append(Path(shutil.copyfile(src, out / f"pydicom_{name}.dcm")))
    nicom = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
    for name in _NIBABEL_FILES:
        dst = out / f"nibabel_{name.removesuffix('.gz')}"
        opener = gzip.open if name.endswith(".gz") else open
        with opener(nicom / name, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        files.append(dst)
    return files


def _generator_samples(out: Path, n: int, seed: int) -> list[Path]:
    """Bundled generators' outputs, labelled; plus a label-stripped JPEG copy of each."""
    try:
        from generators import generate, list_bundled
    except ImportError:
        return []
    files: list[Path] = []
    for model in list_bundled():
        written = generate(model["name"], n, str(out), fmt="png", seed=seed, progress=False)
        files += written
        for path in written:  # the realistic fraud case: decoded, re-encoded, every label gone
            pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            stripped = path.with_name(path.stem + "_stripped.jpg")
            cv2.imwrite(str(stripped), _to_u8(pixels), [cv2.IMWRITE_JPEG_QUALITY, 85])
            files.append(stripped)
    return files


def _signature_files(out: Path, seed: int) -> list[Path]:
    """PNG/JPEG carrying what A1111, ComfyUI and IPTC-aware tools write (pixels: smooth noise)."""
    rng = np.random.default_rng(seed)
    pixels = cv2.GaussianBlur(rng.random((256, 256)).astype(np.float32), (0, 0), 6)
    pixels = ((pixels - pixels.min()) / np.ptp(pixels) * 255).astype(np.uint8)
    a1111 = "chest x-ray, pneumonia\nNegative prompt: text\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1"
    comfy_prompt = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}})
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    made = {
        "a1111_parameters.png": png_with_text(pixels, {"parameters": a1111}),
        "comfyui_workflow.png": png_with_text(pixels, {"prompt": comfy_prompt, "workflow": "{}"}),
        "iptc_trained_algorithmic.png": png_with_text(pixels, {"XML:com.adobe.xmp": xmp}),
    }
    files = []
    for name, data in made.items():
        (out / name).write_bytes(data)
        files.append(out / name)
    return files


def _broken_files(out: Path, real_dicom: Path) -> list[Path]:
    truncated = out / "truncated.dcm"
    data = real_dicom.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    notes = out / "claim_notes.txt"
    notes.write_text("Claim 17: chest X-ray attached.\n")
    return [truncated, notes]


def _to_u8(pixels: np.ndarray) -> np.ndarray:
    return (pixels // 257).astype(np.uint8) if pixels.dtype == np.uint16 else pixels


def png_with_text(pixels_u8: np.ndarray, text: dict[str, str]) -> bytes:
    """PNG bytes with one text chunk per key, inserted before IEND: tEXt as A1111/ComfyUI write, iTXt for XMP."""
    ok, encoded = cv2.imencode(".png", pixels_u8)
    if not ok:
        raise ValueError("PNG encoding failed")
    body = encoded.tobytes()
    chunks = b""
    for key, value in text.items():
        if key.startswith("XML:"):
            kind, payload = b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
        else:
            kind, payload = b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
        chunks += struct.pack(">I", len(payload)) + kind + payload
        chunks += struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    iend = body.rindex(b"IEND") - 4
    return body[:iend] + chunks + body[iend:]
