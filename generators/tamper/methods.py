"""The tamper methods, registered by name: what each paints or erases, its kind (``inject`` / ``remove``), the
modalities it applies to, and whether it is a training method or held out (kept away from every detector's training
so benchmarks can measure methods a detector never saw). Why each is where: README.md beside this file.

A method is one function ``edit(img, cx, cy, r, args) -> (values, mask, details)`` on a float window in any units;
``tamper_array`` (``apply.py``) cuts the window, calls it and puts the result back. Registering a new one::

    @register_method("my_edit", kind="inject", held_out=True, summary="what it does, in a line")
    def _my_edit(img, cx, cy, r, args): ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .diffusion import ldm_inpaint
from .edit import _crop_box, _disk_dist, _donor_residual, _irregular_radius, _lowpass, _network_fill
from .lesions import (
    MODALITIES,
    Lesion,
    calcification_cluster,
    decode,
    lesion_prior,
    made_grain,
    match_to,
    noise_like,
    poisson_blend,
    ring,
    warp_donor,
)
from .network import load_inpainter

KINDS = ("inject", "remove")


@dataclass
class EditArgs:
    """What a method gets besides the window: modality, units (``"hu"`` or ``"display"``), the seeded generator
    and, for paste methods, the donor window (same units) with the donor lesion's centre and radius in it."""

    modality: str
    units: str
    rng: np.random.Generator
    donor: np.ndarray | None = None
    donor_at: tuple[float, float] | None = None
    donor_radius: float | None = None


Edit = Callable[[np.ndarray, float, float, float, EditArgs], "tuple[np.ndarray, np.ndarray, dict[str, Any]]"]


@dataclass(frozen=True)
class TamperMethod:
    """One registered method. ``held_out``: never used to train a detector (benchmarks report it as unseen)."""

    name: str
    kind: str
    held_out: bool
    modalities: tuple[str, ...]
    needs_donor: bool
    summary: str
    edit: Edit

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "held_out": self.held_out, "modalities": list(self.modalities),
                "needs_donor": self.needs_donor, "summary": self.summary}


_METHODS: dict[str, TamperMethod] = {}


def register_method(
    name: str, *, kind: str, held_out: bool, summary: str, modalities: tuple[str, ...] = MODALITIES,
    needs_donor: bool = False,
) -> Callable[[Edit], Edit]:
    """Decorator: register ``edit`` under ``name``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; known: {', '.join(MODALITIES)}")

    def deco(edit: Edit) -> Edit:
        if name in _METHODS:
            raise ValueError(f"tamper method {name!r} is already registered")
        _METHODS[name] = TamperMethod(name, kind, held_out, tuple(modalities), needs_donor, summary, edit)
        return edit

    return deco


def tamper_methods(kind: str | None = None, held_out: bool | None = None, modality: str | None = None) -> list[str]:
    """Registered method names (registration order), filtered by kind, held-out status and modality."""
    return [m.name for m in _METHODS.values()
            if (kind is None or m.kind == kind) and (held_out is None or m.held_out == held_out)
            and (modality is None or modality in m.modalities)]


def tamper_method(name: str) -> TamperMethod:
    """The method registered as ``name``; ValueError naming the known ones otherwise."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown tamper method {name!r}; known: {', '.join(_METHODS)}") from None


# ------------------------------------------------------------------------------------------------- injections

_SPLIT = 1.2  # sigma of the low-pass / grain split of the injections
# SDEdit strengths of the diffusion methods (the share of the schedule re-run): more lets the model re-draw the
# painted lesion / the coarse fill, less keeps it
_LDM_INJECT_STRENGTH = 0.25
_LDM_REMOVE_STRENGTH = 0.45


def _surroundings(shape, cx: float, cy: float, reach: float) -> np.ndarray:
    """The ring whose grain a new texture must match: just outside the lesion."""
    return ring(shape, cx, cy, 1.3 * reach + 1, 2.2 * reach + 3)


def _regrain(img: np.ndarray, les: Lesion, res: np.ndarray, grain: np.ndarray) -> np.ndarray:
    """The lesion with the original grain fading out and ``grain`` fading in, with weights whose squares sum to one
    (the noise level does not change across the lesion)."""
    w_orig = 1.0 - les.alpha
    w_new = np.sqrt(np.clip(1.0 - w_orig**2, 0, 1))
    return np.where(les.mask, les.values + w_orig * res + w_new * grain, img).astype(np.float32)


def _painted(img, cx, cy, r, a: EditArgs) -> tuple[np.ndarray, np.ndarray, Lesion]:
    base = _lowpass(img, _SPLIT)
    return base, img - base, lesion_prior(img, base, cx, cy, r, a.modality, a.units, a.rng)


def _fresh_grain(base, res, cx, cy, les: Lesion, rng) -> np.ndarray:
    """Noise-model grain of the tissue the lesion sits on (its surroundings, at the target's intensity)."""
    ref = float(base[int(round(cy)), int(round(cx))])
    return noise_like(res, _surroundings(base.shape, cx, cy, les.reach), _SPLIT, rng, base, ref)


@register_method("inject", kind="inject", held_out=False,
                 summary="modality lesion prior on the low-pass image, grain copied from a neighbouring region")
def _inject(img, cx, cy, r, a: EditArgs):
    _base, res, les = _painted(img, cx, cy, r, a)
    core = les.alpha > 0.5
    ref = float(np.mean(les.values[core if core.any() else les.mask]))
    donor = _donor_residual(img, res, cx, cy, les.reach, a.rng, ref=ref)
    return _regrain(img, les, res, donor), les.mask, {}


@register_method("inject_noise", kind="inject", held_out=False,
                 summary="modality lesion prior, fresh grain from a noise model of the surroundings (nothing copied)")
def _inject_noise(img, cx, cy, r, a: EditArgs):
    base, res, les = _painted(img, cx, cy, r, a)
    return _regrain(img, les, res, _fresh_grain(base, res, cx, cy, les, a.rng)), les.mask, {}


def _inject_remade(img, cx, cy, r, a: EditArgs, remake) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Lesion prior + fresh grain, then the region re-made by a generative tool (``remake`` as in ``_remade``);
    the made grain topped up to the surroundings' level where the tool smooths it."""
    base, res, les = _painted(img, cx, cy, r, a)
    draft = _regrain(img, les, res, _fresh_grain(base, res, cx, cy, les, a.rng))
    fresh = _fresh_grain(base, res, cx, cy, les, a.rng)
    made, details = remake(draft, les.mask, cx, cy, les.reach, a)
    lp, grain = made_grain(made, les.alpha > 0.5, _SPLIT, fresh)
    w = les.alpha
    out = (1 - w) * base + w * lp + (1 - w) * res + np.sqrt(np.clip(1 - (1 - w) ** 2, 0, 1)) * grain
    return np.where(les.mask, out, img).astype(np.float32), les.mask, details


@register_method("inject_ae", kind="inject", held_out=True,
                 summary="lesion prior + fresh grain, then the region re-synthesized by a bundled autoencoder's "
                         "decoder (generative in-painting: every pixel in it decoder-made)")
def _inject_ae(img, cx, cy, r, a: EditArgs):
    return _inject_remade(img, cx, cy, r, a, _decoded)


@register_method("inject_ldm", kind="inject", held_out=True,
                 summary="lesion prior + fresh grain, then the region re-sampled by the modality's latent diffusion "
                         "model in the context of the image (SDEdit, blended in-painting): a diffusion tool's edit")
def _inject_ldm(img, cx, cy, r, a: EditArgs):
    return _inject_remade(img, cx, cy, r, a, _diffused(_LDM_INJECT_STRENGTH, "malignant"))


@register_method("inject_calc", kind="inject", held_out=False, modalities=("mammo",),
                 summary="a cluster of 5-15 bright microcalcification specks added on top of the film's own grain")
def _inject_calc(img, cx, cy, r, a: EditArgs):
    out, mask = calcification_cluster(img, cx, cy, r, a.rng)
    return out, mask, {}


def _pasted(img, cx, cy, r, a: EditArgs) -> np.ndarray:
    """The donor's lesion moved (and scaled) onto (cx, cy), its surroundings matched to the target's level and
    spread."""
    src = warp_donor(a.donor, a.donor_at, a.donor_radius or r, r, (cx, cy), img.shape)
    return match_to(src, img, ring(img.shape, cx, cy, 1.3 * r + 1, 2.0 * r + 3))


@register_method("paste_alpha", kind="inject", held_out=False, needs_donor=True,
                 summary="a lesion cut from another patient's image, mean and contrast matched, feathered alpha blend")
def _paste_alpha(img, cx, cy, r, a: EditArgs):
    src = _pasted(img, cx, cy, r, a)
    dist, theta = _disk_dist(img.shape, cx, cy)
    rb = _irregular_radius(theta, 1.15 * r + 1, a.rng, rough=0.06)
    feather = max(1.5, 0.35 * r)
    w = np.clip((rb - dist) / feather + 0.5, 0, 1)
    w = (w * w * (3 - 2 * w)).astype(np.float32)
    mask = w > 0
    return np.where(mask, (1 - w) * img + w * src, img).astype(np.float32), mask, {}


@register_method("paste_poisson", kind="inject", held_out=True, needs_donor=True,
                 summary="a lesion cut from another patient's image, contrast matched, Poisson-blended (its gradients "
                         "kept, the border seamless)")
def _paste_poisson(img, cx, cy, r, a: EditArgs):
    src = _pasted(img, cx, cy, r, a)
    dist, theta = _disk_dist(img.shape, cx, cy)
    region = dist <= _irregular_radius(theta, 1.25 * r + 1, a.rng, rough=0.06)
    # stay one pixel inside the window: the border is where the blend takes its boundary values
    region[0, :], region[-1, :], region[:, 0], region[:, -1] = False, False, False, False
    return poisson_blend(img, src, region), region, {}


# ------------------------------------------------------------------------------------------------- removals

Fill = Callable[[np.ndarray, np.ndarray, float, float, float], np.ndarray]


def _hole(shape, cx, cy, r, rng, feather: float) -> tuple[np.ndarray, float]:
    """(blend weight: 1 inside an irregular disk of ~1.25 r, a smoothstep over ``feather`` px outside it, reach)."""
    dist, theta = _disk_dist(shape, cx, cy)
    rb = _irregular_radius(theta, 1.25 * r + 1.0, rng, rough=0.06)
    w = np.clip((rb + feather - dist) / feather, 0, 1).astype(np.float32)
    return w * w * (3 - 2 * w), float(rb.max() + feather)


def _erase(img, cx, cy, r, a: EditArgs, fill: Fill, grain) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Erase an irregular disk of ~1.25 r: ``fill`` gives the coarse content of the hole from its surroundings,
    ``grain(img, res, fill_lp, hole, reach, sigma) -> (fill_lp, grain, details)`` the fine texture."""
    w, reach = _hole(img.shape, cx, cy, r, a.rng, max(1.5, 0.2 * r))
    hole = w > 0
    filled = fill(img, hole, cx, cy, reach)
    # Laplacian-style split: the fill gives the coarse content, the grain source the fine texture
    sigma_tex = max(1.2, 0.2 * r)
    base = _lowpass(img, sigma_tex)
    res = img - base
    fill_lp, texture, details = grain(img, res, _lowpass(filled, sigma_tex), hole, reach, sigma_tex, cx, cy, a)
    w_grain = np.sqrt(np.clip(1.0 - (1.0 - w) ** 2, 0, 1))
    # low-pass parts blend linearly; the grain with square-summing weights, as in the injections
    out = (1 - w) * base + w * fill_lp + (1 - w) * res + w_grain * texture
    return np.where(hole, out, img).astype(np.float32), hole, details


def _network(img, hole, cx, cy, reach):
    return _network_fill(img, hole, cx, cy, reach, load_inpainter())


def _telea(img, hole, cx, cy, reach):
    """OpenCV's Telea in-painting: each hole pixel from a weighted average of known ones, marching inward from the
    border. On float32 it is run on a 0-255 scale: on values near [0, 1] OpenCV's float path darkens the fill."""
    lo, hi = float(img.min()), float(img.max())
    span = (hi - lo) or 1.0
    z = ((img - lo) * (255.0 / span)).astype(np.float32)
    f = cv2.inpaint(z, hole.astype(np.uint8), max(3, int(round(0.25 * reach))), cv2.INPAINT_TELEA)
    return f * (span / 255.0) + lo


def _donor_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a: EditArgs):
    return fill_lp, _donor_residual(img, res, cx, cy, reach, a.rng, ref=float(fill_lp[hole].mean())), {}


def _fill_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, rng) -> np.ndarray:
    """Noise-model grain of the surroundings at the fill's intensity."""
    level = img - res  # the low-pass image
    return noise_like(res, _surroundings(img.shape, cx, cy, reach), sigma, rng, level, float(fill_lp[hole].mean()))


def _noise_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a: EditArgs):
    return fill_lp, _fill_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a.rng), {}


def _remade(remake):
    """A grain source for ``_erase``: the hole's draft (coarse fill + fresh grain) re-made by a generative tool,
    ``remake(draft, region, cx, cy, reach, a) -> (made, details)``, its grain topped up where the tool smooths it."""
    def grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a: EditArgs):
        fresh = _fill_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a.rng)
        draft = np.where(hole, fill_lp + fresh, img).astype(np.float32)
        top_up = _fill_grain(img, res, fill_lp, hole, reach, sigma, cx, cy, a.rng)
        made, details = remake(draft, hole, cx, cy, reach, a)
        lp, made_texture = made_grain(made, hole, sigma, top_up)
        return lp, made_texture, details

    return grain


def _decoded(draft, region, cx, cy, reach, a: EditArgs):
    """``draft`` re-synthesized around the region by one of the bundled autoencoders (``decode``)."""
    x0, y0, x1, y1 = _crop_box(cx, cy, int(math.ceil(1.5 * reach + 8)), draft.shape)
    made = draft.copy()
    made[y0:y1, x0:x1], name = decode(draft[y0:y1, x0:x1], a.rng)
    return made, {"decoder": name}


def _diffused(strength: float, finding: str):
    """``draft``'s region re-sampled by the modality's latent diffusion model at SDEdit ``strength``; ``finding``:
    the mammography class to steer to (the other models have no class that says it)."""
    def remake(draft, region, cx, cy, reach, a: EditArgs):
        made, name = ldm_inpaint(draft, region, cx, cy, reach, a.modality, a.rng, strength=strength,
                                 class_label=finding if a.modality == "mammo" else None)
        return made, {"generator": name}

    return remake


@register_method("remove", kind="remove", held_out=False,
                 summary="in-painting network for the coarse fill, grain copied from a neighbouring region")
def _remove(img, cx, cy, r, a: EditArgs):
    return _erase(img, cx, cy, r, a, _network, _donor_grain)


@register_method("remove_telea", kind="remove", held_out=False,
                 summary="classic in-painting from the surrounding tissue (OpenCV Telea), fresh grain from a noise "
                         "model of the surroundings")
def _remove_telea(img, cx, cy, r, a: EditArgs):
    return _erase(img, cx, cy, r, a, _telea, _noise_grain)


@register_method("remove_ae", kind="remove", held_out=True,
                 summary="in-painting network for the coarse fill, then the hole re-synthesized by a bundled "
                         "autoencoder's decoder (decoder-made texture, nothing copied)")
def _remove_ae(img, cx, cy, r, a: EditArgs):
    return _erase(img, cx, cy, r, a, _network, _remade(_decoded))


@register_method("remove_ldm", kind="remove", held_out=True,
                 summary="in-painting network for the coarse fill, then the hole re-sampled by the modality's latent "
                         "diffusion model in the context of the image (a diffusion in-painting tool)")
def _remove_ldm(img, cx, cy, r, a: EditArgs):
    return _erase(img, cx, cy, r, a, _network, _remade(_diffused(_LDM_REMOVE_STRENGTH, "normal")))


@register_method("remove_clone", kind="remove", held_out=True,
                 summary="clone stamp: healthy tissue from elsewhere in the same image, the patch whose surroundings "
                         "best match the hole's, feathered over it")
def _remove_clone(img, cx, cy, r, a: EditArgs):
    wgt, reach = _hole(img.shape, cx, cy, r, a.rng, max(1.5, 0.3 * r))
    context = ring(img.shape, cx, cy, reach, 1.6 * reach + 2)
    hole = _disk_dist(img.shape, cx, cy)[0] <= reach
    level = float(np.median(img[context]))
    h, w = img.shape
    best, best_cost = None, np.inf
    # what a person with a clone tool does: try sources around the lesion, keep the one whose context lines up and
    # whose inside looks like the tissue around the hole
    for angle in a.rng.permutation(16) * (2 * np.pi / 16):
        for scale in (2.1, 2.6, 3.2, 3.8):
            dx, dy = int(round(math.cos(angle) * scale * reach)), int(round(math.sin(angle) * scale * reach))
            sx, sy, span = cx + dx, cy + dy, 1.6 * reach + 2
            if not (span <= sx < w - span and span <= sy < h - span):
                continue
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            # shifted(y, x) = img(y + dy, x + dx)
            shifted = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT)
            cost = float(np.mean((shifted[context] - img[context]) ** 2)) + float(
                np.mean((shifted[hole] - level) ** 2))
            if cost < best_cost:
                best, best_cost = shifted, cost
    if best is None:
        raise ValueError(f"no room around ({cx:.0f}, {cy:.0f}) for a clone source: the image is too small for "
                         f"radius {r:g}")
    mask = wgt > 0
    return np.where(mask, (1 - wgt) * img + wgt * best, img).astype(np.float32), mask, {}

