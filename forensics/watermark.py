"""medaudit's invisible provenance watermark: a keyed low-frequency ±1 pattern added to luminance.

What it proves: with the public default key, that an honest pipeline using medaudit made the image. That key is in
this open-source file, so anyone can remove the mark or add it to a real image; a found mark is provenance, not proof
against an adversary. With a secret ``WatermarkKey`` (an institution's own, ``--watermark-key``), the patterns are
drawn from an HMAC of the secret: only key holders can detect the mark or stamp it on another image (threat model:
docs/PROVENANCE.md).

How it works:
    * Key: for each grid size ``G`` in ``_SCALES`` a fixed pseudo-random ±1 grid ``s_G`` (G, G), drawn from a
      seed derived from ``_KEY``. The grid is stretched over the whole image (bilinear), so it scales with the
      image: resizing (aspect kept) leaves it where the detector expects it.
    * Embed: every scale whose cells are at least ``_MIN_CELL_PX`` pixels wide in this image is added to the
      luminance, all scales sharing the energy budget, with amplitude ``strength`` (in [0, 1] units; the default
      is 4.5 grey levels of 255, about 38.5-39.5 dB PSNR). RGB images get the same offset on all three channels,
      so chroma (and 4:2:0 chroma subsampling) is untouched.
    * Detect: luminance is area-resampled to G x G (whatever the input size), whitened (minus a Gaussian blur),
      normalized by the local residual energy and clipped (edges of anatomy stop dominating), then passed through
      the adjoint of the whitening, giving a vector ``b`` (G, G) that is computed from the image alone. The test
      statistic is ``z = <s_G, b> / ||b||``.

Why the threshold is safe: for an image that was not marked with our key, ``b`` does not depend on ``s_G``, and
``s_G`` is (pseudo-)independent ±1 noise, so ``z`` is a Rademacher sum with unit variance: approximately N(0, 1)
(central limit over G*G cells; clipped residuals keep any single cell from dominating) and, by Hoeffding,
P(z >= t) <= exp(-t^2 / 2) whatever the image content. ``detect`` reports the largest of the per-scale z and the
Stouffer combination of the scales (at most 4 tests), so at ``THRESHOLD`` = 5.2 the false-positive rate is
<= 4 * P(N(0,1) >= 5.2) ~ 4e-7 under the Gaussian approximation. No calibration data is involved.

Robustness (measured by ``benchmarks/watermark_robustness.py``): JPEG quality >= 70, resizing >= 0.5x (and back),
16 -> 8 bit export, blur sigma 1 px, mild noise. Not designed to survive cropping, rotation or flips.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

_KEY = "medaudit.watermark.v1"
# Grid sizes (cells across the image). 24 survives 64 px -> 0.5x -> JPEG 70; finer grids add power on big images.
_SCALES = (24, 48, 96)
# A scale is embedded only when its cells are at least this wide in the image being marked.
_MIN_CELL_PX = 2.6
# Detection: whitening blur (in cells), local-energy window (in cells), residual clip, noise floor (grey levels).
_HP_SIGMA = 0.7
_LOCAL_SIGMA = 1.0
_CLIP = 2.0
_FLOOR = 0.5 / 255.0

DEFAULT_STRENGTH = 4.5 / 255.0
THRESHOLD = 5.2
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class WatermarkResult:
    """What ``detect`` found.

    Attributes:
        present: True when ``z >= threshold``.
        z: detection statistic; ~N(0, 1) on images without the mark.
        score: P(marked) in [0, 1], a logistic function of ``z`` (0.5 two units below the threshold,
            0.993 at the threshold).
        threshold: the z threshold used.
        per_scale: z for each grid size that could be evaluated at the input's size.
    """

    present: bool
    z: float
    score: float
    threshold: float
    per_scale: dict[int, float] = field(default_factory=dict)


#: Where a secret key is read from when no key file is named (the secret itself, not a path).
KEY_ENV = "MEDAUDIT_WATERMARK_KEY"
#: Shortest secret accepted: the mark is one keyed bit, so a short key could be found by trying keys on one image.
MIN_KEY_BYTES = 16


class WatermarkKey:
    """A secret watermark key. ``repr`` and ``str`` never show the secret; ``key_id`` names it in messages.

    Args:
        secret: at least ``MIN_KEY_BYTES`` bytes (text is UTF-8 encoded; surrounding whitespace is dropped).
    """

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: str | bytes):
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        raw = raw.strip()
        if len(raw) < MIN_KEY_BYTES:
            raise ValueError(f"a watermark key needs at least {MIN_KEY_BYTES} bytes of secret, got {len(raw)}")
        self._secret = raw
        # A public fingerprint: lets a report say which key matched without revealing anything usable.
        self.key_id = hmac.new(raw, b"medaudit.watermark.key-id", hashlib.sha256).hexdigest()[:12]

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> WatermarkKey:
        """The secret held in a file (its whole content, whitespace stripped)."""
        return cls(Path(path).read_bytes())

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WatermarkKey | None:
        """The secret in ``$MEDAUDIT_WATERMARK_KEY``, or None when it is unset or empty."""
        value = (os.environ if env is None else env).get(KEY_ENV, "")
        return cls(value) if value.strip() else None

    def seed(self, grid: int) -> int:
        digest = hmac.new(self._secret, f"{_KEY}/{grid}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little")

    def __repr__(self) -> str:
        return f"WatermarkKey(id={self.key_id})"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, WatermarkKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __getstate__(self):  # scan options travel to worker processes
        return self._secret

    def __setstate__(self, state):
        self._secret = state
        self.key_id = hmac.new(state, b"medaudit.watermark.key-id", hashlib.sha256).hexdigest()[:12]


def _pattern(grid: int, key: WatermarkKey | None = None) -> np.ndarray:
    if key is None:  # the public default: unchanged since v1, so old outputs still detect
        seed = int.from_bytes(hashlib.sha256(f"{_KEY}/{grid}".encode()).digest()[:8], "little")
    else:
        seed = key.seed(grid)
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(grid, grid))


_PATTERNS = {g: _pattern(g) for g in _SCALES}


@functools.lru_cache(maxsize=8)
def _keyed_patterns(key: WatermarkKey) -> dict[int, np.ndarray]:
    return {g: _pattern(g, key) for g in _SCALES}


def _patterns(key: WatermarkKey | None) -> dict[int, np.ndarray]:
    return _PATTERNS if key is None else _keyed_patterns(key)


def _luminance(pixels: np.ndarray) -> np.ndarray:
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        if x.shape[2] == 1:
            return x[:, :, 0]
        return x[:, :, :3] @ _LUMA
    if x.ndim != 2:
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {x.shape}")
    return x


def _embedded_scales(height: int, width: int) -> tuple[int, ...]:
    side = min(height, width)
    scales = tuple(g for g in _SCALES if side / g >= _MIN_CELL_PX)
    return scales or (_SCALES[0],)


def embed(pixels: np.ndarray, strength: float = DEFAULT_STRENGTH, key: WatermarkKey | None = None) -> np.ndarray:
    """Add the watermark.

    Args:
        pixels: float32 (H, W) or (H, W, 3) in [0, 1]; any size (below ~64 px the mark gets weak).
        strength: amplitude of the ±1 pattern in [0, 1] units (default 4.5/255: PSNR about 39 dB).
        key: a secret key (only its holders can detect the mark), or None for the public default mark.

    Returns:
        float32 array of the same shape, clipped to [0, 1].
    """
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {x.shape}")
    h, w = x.shape[:2]
    scales = _embedded_scales(h, w)
    # The scales share the energy budget, so PSNR does not depend on the image size.
    amp = float(strength) / math.sqrt(len(scales))
    patterns = _patterns(key)
    delta = np.zeros((h, w), dtype=np.float32)
    for g in scales:
        delta += cv2.resize(patterns[g], (w, h), interpolation=cv2.INTER_LINEAR)
    delta *= amp
    if x.ndim == 3:
        delta = delta[:, :, None]
    return np.clip(x + delta, 0.0, 1.0).astype(np.float32)


def _highpass(y: np.ndarray) -> np.ndarray:
    return y - cv2.GaussianBlur(y, (0, 0), _HP_SIGMA, borderType=cv2.BORDER_REFLECT)


def _scale_z(lum: np.ndarray, grid: int, pattern: np.ndarray) -> float:
    h, w = lum.shape
    interp = cv2.INTER_AREA if min(h, w) >= grid else cv2.INTER_LINEAR
    y = cv2.resize(lum, (grid, grid), interpolation=interp)
    e = _highpass(y)
    local = np.sqrt(cv2.GaussianBlur(e * e, (0, 0), _LOCAL_SIGMA, borderType=cv2.BORDER_REFLECT)) + _FLOOR
    # Adjoint of the whitening: correlating with hp(s) == correlating hp(e) with s (the blur is symmetric).
    b = _highpass(np.clip(e / local, -_CLIP, _CLIP))
    norm = float(np.sqrt(np.sum(b.astype(np.float64) ** 2)))
    if norm < 1e-12:
        return 0.0
    return float(np.sum(pattern * b, dtype=np.float64) / norm)


def score_from_z(z: float, threshold: float = THRESHOLD) -> float:
    """P(marked) in [0, 1]: logistic in z, 0.993 at the threshold."""
    t = 2.5 * (z - threshold + 2.0)
    return float(1.0 / (1.0 + math.exp(-max(min(t, 60.0), -60.0))))


def detect(pixels: np.ndarray, key: WatermarkKey | None = None) -> WatermarkResult:
    """Look for the watermark.

    Args:
        pixels: float32 (H, W) or (H, W, 3) in [0, 1] (other numeric dtypes are taken as already in [0, 1]);
            any size, e.g. a marked image after resizing (aspect kept), JPEG or bit-depth reduction.
        key: look for this secret key's mark instead of the public one (a mark made with another key, or the
            public mark, stays at z ~ N(0, 1)).

    Returns:
        WatermarkResult; ``present`` when ``z >= THRESHOLD`` (false-positive rate <= ~4e-7 per image).
    """
    lum = _luminance(pixels)
    if not np.all(np.isfinite(lum)):
        lum = np.nan_to_num(lum, nan=0.0, posinf=1.0, neginf=0.0)
    side = min(lum.shape)
    scales = [g for g in _SCALES if side >= g] or [_SCALES[0]]
    patterns = _patterns(key)
    per_scale = {g: _scale_z(lum, g, patterns[g]) for g in scales}
    zs = list(per_scale.values())
    candidates = zs + ([sum(zs) / math.sqrt(len(zs))] if len(zs) > 1 else [])
    z = max(candidates)
    return WatermarkResult(
        present=bool(z >= THRESHOLD), z=float(z), score=score_from_z(z), threshold=THRESHOLD, per_scale=per_scale
    )


__all__ = ["DEFAULT_STRENGTH", "KEY_ENV", "THRESHOLD", "WatermarkKey", "WatermarkResult", "detect", "embed",
           "score_from_z"]
