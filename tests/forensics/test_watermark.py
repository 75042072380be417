"""The provenance watermark: embed -> detect through the exports we promise, and silence on unmarked images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from forensics.records import MedicalImage
from forensics.watermark import DEFAULT_STRENGTH, THRESHOLD, WatermarkResult, detect, embed


def _natural(size: int, seed: int, rgb: bool = False) -> np.ndarray:
    """A smooth 'anatomy-like' image: 1/f noise plus a bright ellipse, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f**1.2
    field = np.real(np.fft.ifft2(spec))
    field = (field - field.mean()) / (field.std() + 1e-9)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((xx - 0.5) ** 2 / 0.16 + (yy - 0.5) ** 2 / 0.1 < 1).astype(np.float32)
    img = 0.15 + 0.45 * cv2.GaussianBlur(body, (0, 0), size / 40) + 0.08 * field
    img = np.clip(img, 0, 1).astype(np.float32)
    if rgb:
        img = np.stack([img, img * 0.8 + 0.1, img * 0.6 + 0.2], axis=-1).clip(0, 1).astype(np.float32)
    return img


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    u = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    if u.ndim == 3:
        u = u[:, :, ::-1]
    ok, buf = cv2.imencode(".jpg", u, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    d = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if d.ndim == 3:
        d = d[:, :, ::-1]
    return d.astype(np.float32) / 255


def _half(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    return cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("size", [64, 128, 512])
@pytest.mark.parametrize("rgb", [False, True])
def test_embed_then_detect(size: int, rgb: bool) -> None:
    x = _natural(size, seed=size, rgb=rgb)
    y = embed(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    res = detect(y)
    assert isinstance(res, WatermarkResult)
    assert res.present and res.z >= THRESHOLD and res.threshold == THRESHOLD
    assert res.score > 0.99


@pytest.mark.parametrize("size", [64, 128, 512])
def test_psnr_at_least_38_db(size: int) -> None:
    x = _natural(size, seed=1)
    assert _psnr(embed(x), x) >= 38.0


@pytest.mark.parametrize("rgb", [False, True])
def test_survives_jpeg_70(rgb: bool) -> None:
    assert detect(_jpeg(embed(_natural(128, seed=3, rgb=rgb)), 70)).present


@pytest.mark.parametrize("size", [64, 128])
def test_survives_half_resize(size: int) -> None:
    assert detect(_half(embed(_natural(size, seed=4)))).present


def test_survives_half_resize_then_jpeg_70() -> None:
    assert detect(_jpeg(_half(embed(_natural(128, seed=5))), 70)).present


def test_survives_16_to_8_bit() -> None:
    x16 = np.rint(_natural(128, seed=6) * 65535) / 65535
    y8 = np.rint(embed(x16.astype(np.float32)) * 255).astype(np.uint8)
    assert detect(y8.astype(np.float32) / 255).present


def test_accepts_any_size_and_odd_shapes() -> None:
    y = embed(_natural(128, seed=7))
    assert detect(cv2.resize(y, (97, 97), interpolation=cv2.INTER_AREA)).present
    assert detect(np.zeros((5, 3), np.float32)).present is False
    assert detect(np.full((64, 64), 0.5, np.float32)).present is False


def test_no_detections_on_unmarked_textures() -> None:
    rng = np.random.default_rng(0)
    zs = []
    for i in range(200):
        kind = i % 4
        size = (64, 128, 96, 200)[i % 4]
        if kind == 0:
            img = rng.random((size, size), dtype=np.float32)
        elif kind == 1:
            img = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 1 + i % 5)
        elif kind == 2:
            img = _natural(size, seed=1000 + i, rgb=bool(i % 8 == 2))
        else:
            img = _jpeg(_natural(size, seed=2000 + i), 70)
        res = detect(img)
        zs.extend(res.per_scale.values())
        assert not res.present, f"false positive on texture {i}: z={res.z:.2f}"
    # Each per-scale statistic is ~N(0, 1) on unmarked images (detect reports the max of a few of them).
    assert max(zs) < 4.5
    assert abs(float(np.mean(zs))) < 0.3
    assert 0.6 < float(np.std(zs)) < 1.4


def test_default_strength_is_a_few_grey_levels() -> None:
    assert 1 / 255 < DEFAULT_STRENGTH < 8 / 255


def _image(pixels: np.ndarray) -> MedicalImage:
    return MedicalImage(pixels=pixels, path="x.png", sha256="0" * 64, format="png")


def test_analyzer_records() -> None:
    from forensics.analyzers.watermark import WatermarkAnalyzer

    analyzer = WatermarkAnalyzer()
    assert analyzer.name == "watermark" and analyzer.kind == "mark"

    found = analyzer.analyze(_image(embed(_natural(128, seed=8))))
    assert found.analyzer == "watermark" and found.decisive
    assert found.score is not None and found.score >= 0.99
    assert [e.code for e in found.evidence] == ["watermark.medaudit"]
    assert found.evidence[0].weight == 1.0 and "z=" in found.evidence[0].message

    absent = analyzer.analyze(_image(_natural(128, seed=8)))
    assert absent.score is None and not absent.decisive
    assert [(e.code, e.weight) for e in absent.evidence] == [("watermark.absent", 0.0)]
    assert "z=" in absent.evidence[0].message


def test_analyzer_is_registered() -> None:
    from forensics.analyzers import ANALYZERS
    from forensics.analyzers.watermark import WatermarkAnalyzer

    assert "watermark" in ANALYZERS.names("watermark")
    assert isinstance(ANALYZERS.create("watermark"), WatermarkAnalyzer)
