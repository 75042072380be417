"""Perturbations applied to test images after the format-matched path, and the shortcut controls.

``GRID`` (both classes, the robustness grid): JPEG 90/70/50, resize 0.5/0.75/1.5, Gaussian blur, Gaussian noise,
window/level, 16 -> 8 bit, DICOM -> PNG export. Each is a pure function float32 (H, W[, 3]) in [0, 1] -> same;
noise draws from a generator seeded by the image content, so a perturbed set is reproducible.

``controls(natives)`` (real images only): the shortcut controls of research/generalization_probe.md - a real image
taken down to each generator's native size and back up, with added noise, re-compressed as JPEG 50. A detector that
flags these is detecting processing, not synthesis; their flag rate is shown beside every detector's figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from forensics.formatpath import jpeg_roundtrip, native_roundtrip, png_roundtrip

Perturbation = Callable[[np.ndarray], np.ndarray]


def _rng(x: np.ndarray) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest()[:8],
                                                "big"))


def jpeg(q: int) -> Perturbation:
    return lambda x: jpeg_roundtrip(x, q)


def resize(f: float) -> Perturbation:
    """Rescale by ``f`` (area when shrinking, cubic when enlarging); the detector sees the new size."""

    def fn(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        return np.clip(cv2.resize(x, (max(8, round(w * f)), max(8, round(h * f))), interpolation=interp), 0, 1)

    return fn


def blur(sigma: float) -> Perturbation:
    return lambda x: np.clip(cv2.GaussianBlur(np.ascontiguousarray(x), (0, 0), sigma), 0, 1).astype(np.float32)


def noise(sigma: float) -> Perturbation:
    def fn(x: np.ndarray) -> np.ndarray:
        return png_roundtrip(np.clip(x + _rng(x).normal(0, sigma, x.shape).astype(np.float32), 0, 1), 8)

    return fn


def window_level(center: float = 0.45, width: float = 0.7, gamma: float = 1.0) -> Perturbation:
    """A narrower display window (values outside clip), as a viewer's or exporter's window/level does."""

    def fn(x: np.ndarray) -> np.ndarray:
        lo = center - width / 2
        return png_roundtrip(np.clip((x - lo) / width, 0, 1) ** gamma, 8)

    return fn


def bits_16_to_8(x: np.ndarray) -> np.ndarray:
    """A 16-bit export squeezed to 8 bits: the values are stretched to the 2nd-98th percentile (an exporter's auto
    window), stored as 16-bit PNG, then quantized to 8 bits - which leaves the histogram gaps of a real 16 -> 8
    conversion."""
    lo, hi = np.quantile(x, [0.02, 0.98])
    y = np.clip((x - lo) / max(float(hi - lo), 1e-3), 0, 1)
    return png_roundtrip(png_roundtrip(y, 16), 8)


def dicom_to_png(x: np.ndarray) -> np.ndarray:
    """A DICOM -> PNG export: pixels written to a 12-bit MONOCHROME2 DICOM with a VOI window (pydicom, in memory),
    read back through ``forensics.io.load`` (rescale + window), exported as 8-bit PNG. Colour images are converted to
    grayscale first (DICOM exports of radiographs are grayscale)."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    from forensics.formatpath import to_gray
    from forensics.io import load

    g = to_gray(x)
    stored = np.round(g * 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["medaudit-bench"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("bench.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = "DX", "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    lo, hi = np.quantile(stored, [0.01, 0.99])
    ds.WindowCenter, ds.WindowWidth = float((lo + hi) / 2), float(max(hi - lo, 1))
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    px = load("bench.dcm", data=buf.getvalue()).pixels
    return png_roundtrip(np.clip(px, 0, 1).astype(np.float32), 8)


#: The perturbation grid (name -> function), applied to both classes of a test set.
GRID: dict[str, Perturbation] = {
    "jpeg90": jpeg(90),
    "jpeg70": jpeg(70),
    "jpeg50": jpeg(50),
    "resize0.5": resize(0.5),
    "resize0.75": resize(0.75),
    "resize1.5": resize(1.5),
    "blur1.0": blur(1.0),
    "noise0.02": noise(0.02),
    "window_level": window_level(),
    "16to8bit": bits_16_to_8,
    "dicom_png": dicom_to_png,
}


def controls(natives: Sequence[int]) -> dict[str, Perturbation]:
    """Shortcut controls for real images: ``native<N>`` per generator native side, ``noise``, ``jpeg50``."""
    out: dict[str, Perturbation] = {}
    for n in sorted(set(int(v) for v in natives)):
        out[f"native{n}"] = lambda x, n=n: png_roundtrip(native_roundtrip(x, n), 8)
    out["noise0.02"] = noise(0.02)
    out["jpeg50"] = jpeg(50)
    return out


def apply(fn: Perturbation, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.clip(np.asarray(fn(x), dtype=np.float32), 0, 1) for x in images]
