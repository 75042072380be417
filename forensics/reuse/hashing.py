"""Perceptual hashes for the image-reuse index: pHash over the 8 dihedral variants and over sub-windows.

Pipeline (every image, stored or queried):

1. *Normalize*: grey (luminance), uint8, shrink so the longer side is at most ``WORK_PX`` (area resampling).
2. *Windows*: the whole image plus overlapping sub-windows at scales 0.9 and 0.8 on a 3x3 grid of offsets
   (``WINDOWS``). A copy cropped by up to ~20 % per side lines up with one of them within a few per cent.
3. *Per window*: histogram equalization (undoes gamma/contrast/window-level changes, which are monotonic), resize
   to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies, threshold at their median -> 64 bits. This is
   ``imagehash.phash`` (same DCT, same block, same median rule); we compute it in one batched matrix product
   instead of one PIL call per window, and the tests check it against ``imagehash.phash``.
4. *Dihedral variants*: a flip or a quarter turn of the pixels is a sign pattern and/or a transpose of the DCT
   coefficients, so the 8 variants (``TRANSFORMS``) come from one DCT, exactly.

Stored images keep the identity hashes of all windows; a query hashes all 8 variants of all its windows. Matching
compares query-whole-image against stored windows (the query is a crop of a filed image) and query windows
against stored whole images (the filed image is a crop of the query).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

HASH_BITS = 64
HASH_BYTES = HASH_BITS // 8
WORK_PX = 256  # longer side of the normalized image
MIN_SIDE = 2  # a shorter side below this has no windows and no DCT to hash (a 1x1 or 1x64 image)
_DCT_PX = 32  # as imagehash.phash: resize to 32x32, keep the 8x8 low block
_LOW = 8


def _grid(scale: float) -> list[tuple[float, float, float]]:
    room = 1.0 - scale
    return [(scale, room * i / 2, room * j / 2) for i in range(3) for j in range(3)]


# (scale, top offset, left offset) as fractions of the image; index 0 is the whole image.
WINDOWS: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), *_grid(0.9), *_grid(0.8))

# Dihedral transforms, named for what was done to the *filed* image to get the *query*. Each entry is
# (name, flip_rows, flip_cols, transpose) applied to the query's pixels to undo it: variant(query) == filed.
TRANSFORMS: tuple[tuple[str, bool, bool, bool], ...] = (
    ("none", False, False, False),
    ("hflip", False, True, False),
    ("vflip", True, False, False),
    ("rot180", True, True, False),
    ("transpose", False, False, True),
    ("rot90", True, False, True),  # query = filed turned 90 degrees counter-clockwise (numpy.rot90)
    ("rot270", False, True, True),
    ("antitranspose", True, True, True),
)
TRANSFORM_NAMES = tuple(t[0] for t in TRANSFORMS)


def normalize(pixels: np.ndarray) -> np.ndarray:
    """float [0, 1] or uint8, grey or RGB(A) -> uint8 grey whose longer side is <= WORK_PX."""
    a = _shrink(np.asarray(pixels), WORK_PX)
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[:, :, 0]
        else:
            a = a[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2 or min(a.shape) < MIN_SIDE:
        raise ValueError(f"need a 2-D image of at least {MIN_SIDE}x{MIN_SIDE} pixels, got shape {np.shape(pixels)}")
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if a.max(initial=0.0) > 1.0 + 1e-6:  # integers or stored values: stretch to the range
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = a.shape
    scale = WORK_PX / max(h, w)
    if scale < 1.0:
        a = cv2.resize(a, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(a)


def _shrink(a: np.ndarray, side: int) -> np.ndarray:
    """Area-downsample so the longer side is <= side (before the grey conversion: big RGB photos stay cheap)."""
    h, w = a.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0 or a.dtype not in (np.uint8, np.float32) or (a.ndim == 3 and a.shape[2] > 4):
        return a
    return cv2.resize(
        np.ascontiguousarray(a), (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA
    )


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Unnormalized DCT-II as scipy.fftpack.dct (2 * cos(...)); only its low rows are used."""
    n = _DCT_PX
    k = np.arange(_LOW)[:, None]
    x = np.arange(n)[None, :]
    return (2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))).astype(np.float64)


def _window_blocks(grey: np.ndarray, windows=WINDOWS) -> np.ndarray:
    """(n_windows, 32, 32) float64 equalized, resized windows."""
    h, w = grey.shape
    out = np.empty((len(windows), _DCT_PX, _DCT_PX), np.float64)
    for i, (s, oy, ox) in enumerate(windows):
        y0, x0 = round(oy * h), round(ox * w)
        y1, x1 = max(y0 + 2, y0 + round(s * h)), max(x0 + 2, x0 + round(s * w))
        win = cv2.equalizeHist(np.ascontiguousarray(grey[y0:y1, x0:x1]))
        out[i] = cv2.resize(win, (_DCT_PX, _DCT_PX), interpolation=cv2.INTER_AREA)
    return out


def _low_dct(blocks: np.ndarray) -> np.ndarray:
    d = _dct_matrix()
    return np.einsum("ky,nyx,lx->nkl", d, blocks, d)  # (n, 8, 8): rows = vertical freq, cols = horizontal


_SIGN = (-1.0) ** np.arange(_LOW)  # flipping an axis multiplies DCT coefficient k on that axis by (-1)^k


def _variants(coef: np.ndarray, transforms=TRANSFORMS) -> np.ndarray:
    """(n, 8, 8) coefficients -> (n_transforms, n, 8, 8): each inverse transform applied to the query."""
    out = []
    for _name, flip_rows, flip_cols, transpose in transforms:
        c = coef
        if flip_rows:
            c = c * _SIGN[None, :, None]
        if flip_cols:
            c = c * _SIGN[None, None, :]
        if transpose:
            c = np.swapaxes(c, 1, 2)
        out.append(c)
    return np.stack(out)


def _bits(coef: np.ndarray) -> np.ndarray:
    """(..., 8, 8) -> (..., 8) uint8 packed bits, coefficient > median of its block (imagehash order)."""
    flat = coef.reshape(*coef.shape[:-2], _LOW * _LOW)
    med = np.median(flat, axis=-1, keepdims=True)
    return np.packbits(flat > med, axis=-1)


def stored_hashes(pixels: np.ndarray) -> np.ndarray:
    """(len(WINDOWS), 8) uint8: identity-orientation pHash of every window of a filed image."""
    return _bits(_low_dct(_window_blocks(normalize(pixels))))


def query_hashes(pixels: np.ndarray) -> np.ndarray:
    """(len(TRANSFORMS), len(WINDOWS), 8) uint8: pHash of every window under every inverse dihedral transform."""
    return _bits(_variants(_low_dct(_window_blocks(normalize(pixels)))))


def to_u64(packed: np.ndarray) -> np.ndarray:
    """(..., 8) uint8 -> (...) uint64 for fast XOR/popcount."""
    return np.ascontiguousarray(packed).view(">u8")[..., 0].astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcast Hamming distance between uint64 hash arrays."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int16)


def image_sha256(pixels: np.ndarray) -> str:
    """Hash of the normalized pixels: catches a re-wrapped file (new metadata, same image)."""
    import hashlib

    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(np.asarray(a, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()


def best_matches(query: np.ndarray, stored: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best alignment of one query against N filed images.

    Args:
        query: (len(TRANSFORMS), len(WINDOWS)) uint64, from ``to_u64(query_hashes(...))``.
        stored: (N, len(WINDOWS)) uint64, from ``to_u64(stored_hashes(...))`` of each filed image.

    Returns:
        distance (N,) int: the smallest Hamming distance of (query whole image vs any filed window) and (any query
        window vs filed whole image); transform (N,) int index into TRANSFORMS; window (N,) int: 0 whole-to-whole,
        > 0 a crop was needed (index into WINDOWS, on the query side when negative).
    """
    n, nw = stored.shape
    dist = np.empty(n, np.int16)
    trans = np.empty(n, np.int16)
    win = np.empty(n, np.int16)
    for s in range(0, n, chunk):
        st = stored[s : s + chunk]
        a = hamming(query[None, :, 0, None], st[:, None, :])  # query whole vs filed windows: (n, T, W)
        b = hamming(query[None, :, 1:], st[:, None, 0, None])  # query windows vs filed whole: (n, T, W-1)
        both = np.concatenate([a, b], axis=2).reshape(len(st), -1)
        k = both.argmin(axis=1)
        dist[s : s + chunk] = both[np.arange(len(st)), k]
        t, w = np.divmod(k, 2 * nw - 1)
        trans[s : s + chunk] = t
        win[s : s + chunk] = np.where(w < nw, w, -(w - nw + 1))
    return dist, trans, win


# --- second stage: ORB keypoints + RANSAC (crops the window hashes miss) ---------------------------------------

ORB_PX = 512  # longer side the keypoints are found at
ORB_FEATURES = 500


def undo_transform(pixels: np.ndarray, transform: int) -> np.ndarray:
    """Apply the inverse of TRANSFORMS[transform] to a query's pixels (so it lines up with the filed image)."""
    _name, flip_rows, flip_cols, transpose = TRANSFORMS[transform]
    a = np.asarray(pixels)
    if flip_rows:
        a = a[::-1]
    if flip_cols:
        a = a[:, ::-1]
    if transpose:
        a = np.swapaxes(a, 0, 1)
    return np.ascontiguousarray(a)


def hashable(pixels: np.ndarray) -> bool:
    """True when the image is big enough to hash: both sides at least MIN_SIDE pixels."""
    return min(np.shape(pixels)[:2]) >= MIN_SIDE


def keypoints(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB on the equalized grey image at ORB_PX: ((n, 2) float32 points, (n, 32) uint8 descriptors).

    No points (empty arrays) for an image one pixel thin (1x64): OpenCV's ORB asserts on those instead of finding
    nothing."""
    if not hashable(pixels):
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    a = _shrink(np.asarray(pixels), ORB_PX)
    if a.ndim == 3:
        a = (
            a[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            if a.shape[2] > 1
            else a[:, :, 0]
        )
    u = a if a.dtype == np.uint8 else np.clip(np.asarray(a, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = u.shape
    s = ORB_PX / max(h, w)
    if s < 1.0:
        u = cv2.resize(u, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    u = cv2.equalizeHist(np.ascontiguousarray(u))
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=10)
    kp, des = orb.detectAndCompute(u, None)
    if des is None or not kp:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.float32([k.pt for k in kp]).reshape(-1, 2), des


def ransac_inliers(query: tuple[np.ndarray, np.ndarray], filed: tuple[np.ndarray, np.ndarray]) -> int:
    """Keypoint matches consistent with one scale + shift (no rotation: the dihedral part is undone already)."""
    (pa, da), (pb, db) = query, filed
    if len(da) < 8 or len(db) < 8:
        return 0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return 0
    a = pa[[m.queryIdx for m in matches]]
    b = pb[[m.trainIdx for m in matches]]
    cv2.setRNGSeed(0)
    m, mask = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=1000)
    if m is None or mask is None:
        return 0
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    angle = abs(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))))
    if not (0.4 < scale < 2.5 and angle < 5.0):
        return 0
    return int(mask.sum())


# --- verification: the same image, or a look-alike (the next slice of a CT series)? -----------------------------

# High-pass correlation at or above this, after alignment, says "same image"; below it a hash match is only "similar".
# Measured on 256 px normalized images (one core, docs in forensics/reuse/README.md): JPEG q50, gamma and resized
# copies of chest X-rays and CT score >= 0.90 (crops and combined transforms mostly), while adjacent-slice pairs of
# the CT set that pHash cannot tell apart score 0.18 at the median - but up to 0.97 for near-identical thin slices,
# which is why a match without DICOM identity stays "similar" unless the pixels agree this closely.
SAME_IMAGE_SIMILARITY = 0.90
_HP_SIGMA = 2.0


def verify_similarity(query: np.ndarray, filed: np.ndarray) -> float:
    """How much fine structure two normalized grey images (``normalize`` output) share, in [-1, 1].

    The query is aligned onto the filed image with ORB + RANSAC (scale + shift, so crops line up; resized to the
    filed image's size when no model is found), then the correlation of their high-pass residuals (image minus a
    Gaussian blur) is taken where both overlap. A re-encoded, re-windowed or resized copy keeps its fine structure;
    the neighbouring slice of a series shares the outline but not the vessels and noise.
    """
    q, f = _same_scale(np.ascontiguousarray(query), np.ascontiguousarray(filed))
    h, w = f.shape
    model = _align_model(q, f)
    if model is None:
        aligned = cv2.resize(q, (w, h), interpolation=cv2.INTER_AREA)
        valid = np.ones((h, w), np.uint8)
    else:
        aligned = cv2.warpAffine(q, model, (w, h), flags=cv2.INTER_LINEAR)
        valid = cv2.warpAffine(np.ones_like(q), model, (w, h), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((7, 7), np.uint8)) > 0
    if valid.sum() < 64:
        return 0.0
    a = _high_pass(aligned)[valid]
    b = _high_pass(f)[valid]
    a -= a.mean()
    b -= b.mean()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _same_scale(q: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the larger image so both have the same longer side: a downsized copy has no finer structure left
    to compare, and upsampling it back would read as a difference."""
    side = min(max(q.shape), max(f.shape))

    def shrink(a: np.ndarray) -> np.ndarray:
        s = side / max(a.shape)
        if s >= 1.0:
            return a
        h, w = a.shape
        return cv2.resize(a, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)

    return shrink(q), shrink(f)


def _high_pass(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return a - cv2.GaussianBlur(a, (0, 0), _HP_SIGMA)


def _align_model(q: np.ndarray, f: np.ndarray) -> np.ndarray | None:
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=10)
    kq, dq = orb.detectAndCompute(cv2.equalizeHist(q), None)
    kf, df = orb.detectAndCompute(cv2.equalizeHist(f), None)
    if dq is None or df is None or len(kq) < 8 or len(kf) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(dq, df)
    if len(matches) < 8:
        return None
    a = np.float32([kq[m.queryIdx].pt for m in matches])
    b = np.float32([kf[m.trainIdx].pt for m in matches])
    cv2.setRNGSeed(0)
    model, _ = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=1000)
    return model
