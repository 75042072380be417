"""What a tamper method paints and with which grain: per-modality lesion priors, a noise model of the surroundings,
decoder-made texture (the bundled fake-maker autoencoders) and blending of a lesion cut from another image.

All of it works on a float window in any units (HU, display); intensities are set relative to the window's robust
range, so the same code serves 8-bit PNGs, HU and MR intensities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from .edit import _CT_SOFT_TISSUE_HU, _disk_dist, _irregular_radius, _lowpass, _smooth_field, _soft_tissue_level

#: Modalities the lesion priors know.
MODALITIES = ("ct", "xray", "mri", "mammo")


@dataclass
class Lesion:
    """A painted lesion on the low-pass image: ``values`` (low-pass + lesion), ``alpha`` in [0, 1] (how much of each
    pixel is lesion), ``mask`` (pixels it may change) and ``reach`` (its largest radius in pixels)."""

    values: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray
    reach: float


def robust_range(img: np.ndarray) -> float:
    return float(np.percentile(img, 99.5) - np.percentile(img, 0.5)) or 1.0


def _sigmoid_edge(dist: np.ndarray, rb: np.ndarray, edge: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.clip((dist - rb) / edge, -30, 30)))


def _masked(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = alpha > 2e-3
    return np.where(mask, alpha, 0.0).astype(np.float32), mask


def lesion_prior(
    img: np.ndarray, base: np.ndarray, cx: float, cy: float, r: float, modality: str, units: str,
    rng: np.random.Generator,
) -> Lesion:
    """The modality's lesion painted onto ``base`` (the low-pass image): a solid nodule on CT, an added opacity on
    radiographs, a mass with an oedema-like halo on MRI, a spiculated mass on mammograms."""
    dist, theta = _disk_dist(img.shape, cx, cy)
    if modality == "mri":
        return _mri_mass(img, base, dist, theta, r, rng)
    if modality == "mammo":
        return _spiculated_mass(img, base, dist, theta, r, cx, cy, rng)
    edge = max(0.7, 0.12 * r)
    rb = _irregular_radius(theta, r, rng)
    alpha, mask = _masked(_sigmoid_edge(dist, rb, edge))
    dyn = robust_range(img)
    shape_prof = np.clip(1.0 - (dist / (rb + 1e-6)) ** 2, 0, 1) ** 0.35  # solid, slightly domed
    texture = _smooth_field(img.shape, max(1.0, r / 4), rng)
    if modality == "ct":
        if units == "hu":
            level = rng.uniform(*_CT_SOFT_TISSUE_HU)
            tex_amp = 12.0
        else:
            level = _soft_tissue_level(img)
            tex_amp = 0.015 * dyn
        target = level + tex_amp * texture
        target = np.maximum(target, base)  # a nodule never darkens what it covers
        lesion = base + alpha * (target - base) * (0.85 + 0.15 * shape_prof)
    else:  # projection radiograph: an added opacity, brighter where thicker
        contrast = rng.uniform(0.10, 0.18) * dyn
        lesion = base + alpha * contrast * (0.55 + 0.45 * shape_prof) * (1 + 0.08 * texture)
    return Lesion(lesion.astype(np.float32), alpha, mask, float(rb.max()))


def _mri_mass(img, base, dist, theta, r, rng) -> Lesion:
    """A hyper- or hypo-intense mass with a weaker halo of the same sign (oedema / infiltration) around it."""
    rb = _irregular_radius(theta, r, rng, rough=0.15)
    core = _sigmoid_edge(dist, rb, max(0.8, 0.15 * r))
    halo_r = rb * rng.uniform(1.3, 1.6)
    halo = _sigmoid_edge(dist, halo_r, max(0.8, 0.2 * r))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    amp = rng.uniform(0.18, 0.32) * robust_range(img)
    texture = _smooth_field(img.shape, max(1.0, r / 3), rng)
    shape_prof = np.clip(1.0 - (dist / (rb + 1e-6)) ** 2, 0, 1) ** 0.5
    delta = sign * amp * (core * (0.8 + 0.2 * shape_prof) * (1 + 0.12 * texture) + 0.35 * np.clip(halo - core, 0, 1))
    alpha, mask = _masked(np.maximum(core, halo))
    return Lesion((base + np.where(mask, delta, 0)).astype(np.float32), alpha, mask, float(halo_r.max()))


def _spiculated_mass(img, base, dist, theta, r, cx, cy, rng) -> Lesion:
    """A dense core with thin spicules radiating out to about the radius (the classic malignant mass)."""
    rb = _irregular_radius(theta, 0.45 * r, rng, rough=0.2)
    core = _sigmoid_edge(dist, rb, max(0.7, 0.1 * r))
    spic = np.zeros(img.shape, np.float32)
    shift = 4  # sub-pixel line end points
    for a in rng.uniform(0, 2 * np.pi, int(rng.integers(8, 19))):
        length = r * rng.uniform(0.8, 1.25)
        p0 = (cx + 0.3 * r * math.cos(a), cy + 0.3 * r * math.sin(a))
        # fading toward the tip: three segments of falling weight
        for k, w in enumerate((1.0, 0.7, 0.4)):
            f0, f1 = k / 3, (k + 1) / 3
            q0 = (p0[0] + (length * f0) * math.cos(a), p0[1] + (length * f0) * math.sin(a))
            q1 = (p0[0] + (length * f1) * math.cos(a), p0[1] + (length * f1) * math.sin(a))
            pts = [tuple(int(round(v * (1 << shift))) for v in q) for q in (q0, q1)]
            cv2.line(spic, pts[0], pts[1], float(w), 1, cv2.LINE_AA, shift)
    spic = np.clip(_lowpass(spic, 0.6) * 1.6, 0, 1)
    alpha, mask = _masked(np.clip(np.maximum(core, 0.6 * spic), 0, 1))
    shape_prof = np.clip(1.0 - (dist / (rb + 1e-6)) ** 2, 0, 1) ** 0.4
    amp = rng.uniform(0.15, 0.28) * robust_range(img)
    lesion = base + alpha * amp * (0.75 + 0.25 * shape_prof)
    return Lesion(lesion.astype(np.float32), alpha, mask, float(max(rb.max(), 1.6 * r)))


def calcification_cluster(img: np.ndarray, cx: float, cy: float, r: float, rng: np.random.Generator):
    """(values, mask): 5-15 bright specks (0.5-1.3 px) scattered in a disk of radius ``r``; nothing else changes
    (the film's grain stays under them)."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    add = np.zeros(img.shape, np.float32)
    amp0 = robust_range(img)
    for _ in range(int(rng.integers(5, 16))):
        rho, phi = r * math.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * np.pi)
        x, y = cx + rho * math.cos(phi), cy + rho * math.sin(phi)
        s = rng.uniform(0.5, 1.3)
        add += rng.uniform(0.25, 0.5) * amp0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    mask = add > 0.01 * amp0
    return np.where(mask, img + add, img).astype(np.float32), mask


# ------------------------------------------------------------------------------------------------- grain


def ring(shape: tuple[int, int], cx: float, cy: float, inner: float, outer: float) -> np.ndarray:
    dist, _ = _disk_dist(shape, cx, cy)
    return (dist >= inner) & (dist <= outer)


# high-pass lag-1 correlation of white noise blurred by each sigma (then split at the edit's sigma): a lookup,
# since the high-pass changes the correlation a blur alone would give
_BLURS = (0.0, 0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.45, 1.75)


@lru_cache(maxsize=8)
def _blur_table(split_sigma: float) -> tuple[float, ...]:
    rng = np.random.default_rng(0)
    n0 = rng.standard_normal((96, 96)).astype(np.float32)
    return tuple(_lag1(_highpass(_blurred(n0, s), split_sigma)) for s in _BLURS)


def _blurred(n: np.ndarray, s: float) -> np.ndarray:
    return n if s == 0 else _lowpass(n, s)


def _highpass(x: np.ndarray, sigma: float) -> np.ndarray:
    return x - _lowpass(x, sigma)


def _lag1(x: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean of the horizontal and vertical lag-1 correlation of ``x`` (over pixel pairs both in ``where``)."""
    out = []
    pairs = ((x[:, :-1], x[:, 1:], None if where is None else where[:, :-1] & where[:, 1:]),
             (x[:-1], x[1:], None if where is None else where[:-1] & where[1:]))
    for a, b, sel in pairs:
        a, b = (a[sel], b[sel]) if sel is not None else (a.ravel(), b.ravel())
        if a.size < 16 or a.std() == 0 or b.std() == 0:
            continue
        out.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(out)) if out else 0.0


def _mad_sd(v: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (robust to edges and outliers)."""
    return 1.4826 * float(np.median(np.abs(v - np.median(v)))) if v.size else 0.0


def noise_like(res: np.ndarray, where: np.ndarray, split_sigma: float, rng: np.random.Generator,
               level: np.ndarray | None = None, ref: float | None = None) -> np.ndarray:
    """Fresh grain with the level and correlation of ``res`` (a high-pass residual split at ``split_sigma``) over
    ``where``: white noise, blurred to the matching lag-1 correlation, high-passed the same way, scaled to the
    robust standard deviation. Nothing is copied from the image.

    Measured on the part of ``where`` most like the edited tissue: with ``level`` (the low-pass image) and ``ref``
    the half closest to that intensity (noise depends on it: air, lung, bone), and of that the calmer three
    quarters, since an edge crossing the ring (a lung border, the skin line) would pass for strong, coarse grain."""
    if where.sum() >= 32:
        if level is not None and ref is not None:
            near = np.abs(level - ref)
            where = where & (near <= np.median(near[where]))
        activity = cv2.GaussianBlur(np.abs(res).astype(np.float32), (0, 0), 4.0)
        where = where & (activity <= np.percentile(activity[where], 75))
    if where.sum() < 16:
        where = np.ones(res.shape, bool)
    sd = _mad_sd(res[where])
    rho = _lag1(res, where)
    table = _blur_table(round(float(split_sigma), 2))
    s = _BLURS[int(np.argmin([abs(t - rho) for t in table]))]
    n = _highpass(_blurred(rng.standard_normal(res.shape).astype(np.float32), s), split_sigma)
    return (sd * n / (float(n.std()) + 1e-8)).astype(np.float32)


@cache
def _decoder(name: str):
    from generators.fakemakers import fake_maker

    return fake_maker(name)


def decoder_names() -> list[str]:
    """Bundled fake-maker autoencoders with weights (``ae_*``)."""
    from generators.fakemakers import fake_maker_names

    return [n for n in fake_maker_names("ae_*") if _decoder(n).available()]


def decode(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``x`` (any units) re-synthesized by one of the bundled autoencoders, picked by ``rng``: every output pixel is
    made by the decoder. Values are mapped to [0, 1] by the window's robust range and back."""
    names = decoder_names()
    if not names:
        raise ValueError("this method re-synthesizes pixels through the bundled fake-maker autoencoders, and "
                         "generators/weights/fakemakers has none")
    name = names[int(rng.integers(len(names)))]
    return on_unit_range(x, lambda u: _decoder(name).remake(u, rng)), name


def on_unit_range(x: np.ndarray, fn) -> np.ndarray:
    """``fn`` applied to ``x`` (any units) mapped to [0, 1] by its robust range (0.5th-99.5th percentile), on one
    torch thread, and its result mapped back to ``x``'s units."""
    lo, hi = float(np.percentile(x, 0.5)), float(np.percentile(x, 99.5))
    span = hi - lo or 1.0
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a lesion-sized crop: more threads only add overhead on a shared machine
    try:
        y = fn(np.clip((x - lo) / span, 0, 1).astype(np.float32))
    finally:
        torch.set_num_threads(threads)
    return (y * span + lo).astype(np.float32)


def made_grain(dec: np.ndarray, inside: np.ndarray, split_sigma: float,
               fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low-pass, grain) of ``dec``, an image whose edited region a decoder made.

    The L1-trained decoders smooth grain away: their own high-pass texture is scaled up (at most 3x) toward the
    level of ``fresh`` (noise-model grain at the surroundings' level) over ``inside`` (the edited region), and where
    it is still fainter than that, the rest is made up from ``fresh``, so the region's noise level matches its
    surroundings."""
    lp = _lowpass(dec, split_sigma)
    grain = dec - lp
    # robust levels: the lesion's own edge is in the decoder's high-pass too, and is not grain
    sd, sd_dec = _mad_sd(fresh[inside]) + 1e-8, _mad_sd(grain[inside]) + 1e-8
    gain = float(np.clip(sd / sd_dec, 1.0, 3.0))
    # made up where it is missing: the decoder's texture is uneven (strong on edges, faint in flat parts)
    local_var = cv2.GaussianBlur((gain * grain) ** 2, (0, 0), 1.0)
    top_up = np.sqrt(np.clip(1.0 - local_var / sd**2, 0, 1))
    return lp, (gain * grain + top_up * fresh).astype(np.float32)


# ------------------------------------------------------------------------------------------------- paste


def warp_donor(donor: np.ndarray, donor_at: tuple[float, float], donor_r: float, r: float,
               to: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """``donor`` moved so ``donor_at`` lands on ``to`` and scaled by r / donor_r (its lesion to the target size), on
    a canvas of ``shape``."""
    s = r / donor_r
    m = np.float32([[s, 0, to[0] - s * donor_at[0]], [0, s, to[1] - s * donor_at[1]]])
    return cv2.warpAffine(np.asarray(donor, np.float32), m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def match_to(patch: np.ndarray, target: np.ndarray, ring_mask: np.ndarray) -> np.ndarray:
    """``patch`` shifted and scaled so its surroundings (``ring_mask``) have the target's median and spread: the
    lesion keeps its contrast relative to the tissue it came from."""
    pd, td = patch[ring_mask], target[ring_mask]

    def spread(v):
        return float(np.percentile(v, 84) - np.percentile(v, 16)) + 1e-6

    gain = float(np.clip(spread(td) / spread(pd), 0.5, 2.0))
    return (float(np.median(td)) + gain * (patch - float(np.median(pd)))).astype(np.float32)


def poisson_blend(target: np.ndarray, source: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Poisson image editing (Pérez et al. 2003): inside ``region`` the result has ``source``'s gradients and meets
    ``target`` on the border, i.e. source + the harmonic interpolation of (target - source) from the border."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return target.copy()
    h, w = target.shape
    idx = -np.ones((h, w), np.int64)
    idx[ys, xs] = np.arange(ys.size)
    diff = (target - source).astype(np.float64)
    rows, cols, vals = [np.arange(ys.size)], [np.arange(ys.size)], [np.full(ys.size, 4.0)]
    rhs = np.zeros(ys.size)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
        j = idx[ny, nx]
        inside = j >= 0
        rows.append(np.nonzero(inside)[0])
        cols.append(j[inside])
        vals.append(np.full(int(inside.sum()), -1.0))
        rhs[~inside] += diff[ny[~inside], nx[~inside]]
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(ys.size, ys.size))
    corr = spsolve(a.tocsr(), rhs)
    out = target.astype(np.float32).copy()
    out[ys, xs] = (source[ys, xs] + corr).astype(np.float32)
    return out
