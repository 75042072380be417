"""Copy-move of image grain: a region whose fine residual is a copy of another region of the same image.

Tampering tools hide an edit by borrowing texture: a clone stamp, or CT-GAN-style in-painting that pastes a
neighbour's noise onto the edited disk so the local noise level matches. Noise-level statistics cannot see that
(the level *is* matched), but the copy itself is a strong trace: sensor and quantum noise of two regions of a real
image are independent, so two regions whose high-pass residuals agree pixel for pixel at one offset do not occur
naturally (Fridrich et al. 2003, block matching; Cozzolino et al. 2015, dense matching of local features).

1. residual ``r = gray - blur(sigma=1)``; positions with grain (residual energy above a floor, not saturated, off
   strong edges and the image border, and on CT slices inside the body);
2. every position's 7 x 7 residual block, normalized and sketched by random projections, goes into locality-
   sensitive hash tables; near-identical blocks at least ``MIN_OFFSET`` apart vote for the offset between them;
3. each offset with enough votes is verified densely: the windowed normalized cross-correlation of ``r`` with
   ``r`` shifted by that offset; pixels above ``NCC_MIN`` form the copy map (both the source and the copy light up);
4. the image's statistic is the area (px) of the largest verified copied region (:func:`copy_move`).

Only exact-grid copies (integer offsets, no rotation or scaling) are found; that is what clone tools and the
CT-GAN noise touch-up produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forensics.body import body_mask

BLOCK = 7
MIN_OFFSET = 12  # px: nearer offsets see correlated grain (CT reconstruction kernels, interpolation), not copies
NCC_WINDOW = 7
NCC_MIN = 0.75  # a copied pixel's windowed correlation with its source (8-bit requantization keeps ~0.8-0.99)
NCC_OTHER_MAX = 0.5  # the correlation the opposite offset may reach at a copied pixel
EDGE_FACTOR = 6.0  # gradients above this many times the image's median are anatomy edges, not grain
EDGE_DILATE = 3
BORDER = 0.03  # share of the short side left out along every image border
RES_SIGMA = 1.0
_SKETCH = 16
_PROJ_DIMS = 3
_BUCKET = 0.8
_TABLES = 8
_NEIGHBOURS = 3
_TOP_OFFSETS = 40
_MIN_VOTES = 4


def residual(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), RES_SIGMA, borderType=cv2.BORDER_REFLECT)


def box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over the k x k window around every pixel (borders reflected)."""
    return cv2.boxFilter(x, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def textured(gray: np.ndarray, r: np.ndarray, floor: float = 0.6 / 255) -> np.ndarray:
    """bool map of positions whose neighbourhood has grain to match: not flat, not saturated, not near a strong
    edge (an edge's residual repeats along it, and anatomy is not grain)."""
    g = gray.astype(np.float32)
    mu = box_mean(g, BLOCK)
    energy = np.sqrt(np.maximum(box_mean(r * r, BLOCK), 0))
    inside = (mu > 0.02) & (mu < 0.98)
    b = cv2.GaussianBlur(g, (0, 0), 2.0)
    grad = np.hypot(cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1))
    edge = grad > EDGE_FACTOR * float(np.median(grad[inside])) + 1e-6 if inside.any() else np.zeros_like(inside)
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((EDGE_DILATE, EDGE_DILATE), np.uint8)).astype(bool)
    valid = (energy > floor) & inside & ~edge
    m = max(BLOCK, round(BORDER * min(g.shape)))  # rulers, labels and collimator edges live at the border
    valid[:m], valid[-m:], valid[:, :m], valid[:, -m:] = False, False, False, False
    if _dark_field(g):  # a CT slice: only the patient, not the table or the labels in the field around it
        valid &= body_mask(g)
    return valid


def _dark_field(g: np.ndarray) -> bool:
    k = max(2, min(g.shape) // 16)
    corners = np.concatenate([g[:k, :k].ravel(), g[:k, -k:].ravel(), g[-k:, :k].ravel(), g[-k:, -k:].ravel()])
    return float(np.median(corners)) < 0.05


def _blocks(r: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(n, BLOCK*BLOCK) zero-mean, unit-norm residual blocks centred at (ys, xs)."""
    h = BLOCK // 2
    pad = np.pad(r, h, mode="reflect")
    win = np.lib.stride_tricks.sliding_window_view(pad, (BLOCK, BLOCK))
    b = win[ys, xs].reshape(len(ys), -1).astype(np.float32)
    b -= b.mean(axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-8
    return b


def candidate_offsets(
    r: np.ndarray, valid: np.ndarray, rng: np.random.Generator | None = None
) -> list[tuple[int, int]]:
    """Offsets (dy, dx) between many pairs of near-identical residual blocks, most frequent first.

    Every block is reduced to ``_SKETCH`` random projections (their squared distance estimates ``2 (1 - ncc)`` of
    two blocks). Locality-sensitive hashing on a few of them at a time: blocks sharing a bucket are sorted by another
    projection, and sort neighbours whose sketches say they correlate above ``NCC_MIN`` vote for their offset.
    Comparing only sort neighbours keeps the work linear however large a bucket grows.
    """
    rng = rng or np.random.default_rng(0)
    ys, xs = np.nonzero(valid)
    if len(ys) < 64:
        return []
    z = _blocks(r, ys, xs) @ rng.standard_normal((BLOCK * BLOCK, _SKETCH)).astype(np.float32)
    max_d2 = 2.0 * (1.0 - NCC_MIN) * _SKETCH
    span = 2 * max(r.shape) + 1
    offsets = []  # (dy, dx) of every agreeing pair, encoded as one integer
    for _ in range(_TABLES):
        cols = rng.permutation(_SKETCH)[: _PROJ_DIMS + 1]
        key = np.floor(z[:, cols[:-1]] / _BUCKET + rng.random(_PROJ_DIMS)).astype(np.int64)
        h = np.zeros(len(ys), np.int64)
        for j in range(_PROJ_DIMS):  # one integer per bucket (collisions only add pairs to check)
            h = h * 1_000_003 + key[:, j]
        order = np.lexsort((z[:, cols[-1]], h))
        for k in range(1, _NEIGHBOURS + 1):
            a, b = order[:-k], order[k:]
            same = h[a] == h[b]
            a, b = a[same], b[same]
            dy, dx = ys[b] - ys[a], xs[b] - xs[a]
            # offsets on the 8 px JPEG grid are left out: smooth regions of a JPEG hold identical quantized blocks
            # there (a paste lands on that grid 1 time in 64)
            far = (dy * dy + dx * dx >= MIN_OFFSET * MIN_OFFSET) & ((dy % 8 != 0) | (dx % 8 != 0))
            a, b, dy, dx = a[far], b[far], dy[far], dx[far]
            alike = np.square(z[a] - z[b]).sum(axis=1) <= max_d2
            dy, dx = dy[alike], dx[alike]
            flip = (dy < 0) | ((dy == 0) & (dx < 0))
            offsets.append(np.where(flip, -dy, dy) * span + np.where(flip, -dx, dx))
    codes, counts = np.unique(np.concatenate(offsets), return_counts=True)
    top = np.argsort(-counts, kind="stable")[:_TOP_OFFSETS]
    top = top[counts[top] >= _MIN_VOTES]
    dys = np.floor_divide(codes[top] + span // 2, span)  # dx lies in (-span/2, span/2)
    return [(int(dy), int(c - dy * span)) for dy, c in zip(dys, codes[top], strict=True)]


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = x[y + dy, x + dx]`` (zeros outside)."""
    out = np.zeros_like(x)
    h, w = x.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = x[ys, xs]
    return out


def offset_ncc(r: np.ndarray, valid: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Windowed normalized cross-correlation of ``r`` with ``r`` shifted by (dy, dx); 0 where either side is flat."""
    s = shifted(r, dy, dx)
    num = box_mean(r * s, NCC_WINDOW)
    den = np.sqrt(np.maximum(box_mean(r * r, NCC_WINDOW), 0) * np.maximum(box_mean(s * s, NCC_WINDOW), 0)) + 1e-12
    both = valid & shifted(valid.astype(np.uint8), dy, dx).astype(bool)
    return np.where(both, num / den, 0.0).astype(np.float32)


@dataclass
class CopyMove:
    """What was found: ``map`` float32 (H, W) holds, on every verified copy and on its source, that region's area in
    px (0 elsewhere), so chance matches stay small next to a real paste; ``area`` px of the largest region;
    ``at`` / ``source_at`` (x, y) centres of that region and of its partner; ``box`` / ``source_box`` their bounding
    boxes (x, y, w, h)."""

    map: np.ndarray
    area: int = 0
    at: tuple[int, int] | None = None
    source_at: tuple[int, int] | None = None
    box: tuple[int, int, int, int] | None = None
    source_box: tuple[int, int, int, int] | None = None


def copy_move(gray: np.ndarray) -> CopyMove:
    """Regions of ``gray`` (float (H, W) in [0, 1]) whose fine residual is a copy of another region's.

    A copy is one-sided: where ``r(p) = r(p + d)`` holds because ``p`` was pasted from ``p + d``, ``r(p - d)`` is
    unrelated. Periodic texture and straight edges repeat both ways, so pixels matching at ``+d`` *and* ``-d``
    are not counted.
    """
    g = np.asarray(gray, dtype=np.float32)
    r = residual(g)
    valid = textured(g, r)
    best = CopyMove(np.zeros(g.shape, np.float32))
    for dy, dx in candidate_offsets(r, valid):
        plus, minus = offset_ncc(r, valid, dy, dx), offset_ncc(r, valid, -dy, -dx)
        # p matches p + d and demonstrably not p - d (which must lie on grain inside the image to tell)
        seen_back = shifted(valid.astype(np.uint8), -dy, -dx).astype(bool)
        one_way = ((plus >= NCC_MIN) & seen_back & (minus < NCC_OTHER_MAX)).astype(np.uint8)
        n, lab, stats, centroids = cv2.connectedComponentsWithStats(one_way, connectivity=8)
        if n <= 1:
            continue
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[k, cv2.CC_STAT_AREA])
        region = (lab == k).astype(np.float32) * area
        best.map = np.maximum(best.map, np.maximum(region, shifted(region, -dy, -dx)))
        if area > best.area:
            cx, cy = (int(round(v)) for v in centroids[k])
            best.area, best.at, best.source_at = area, (cx, cy), (cx + dx, cy + dy)
            x, y, w, h = (int(v) for v in stats[k, :4])
            best.box, best.source_box = (x, y, w, h), (x + dx, y + dy, w, h)
    return best
