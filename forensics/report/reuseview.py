"""Reuse matches made checkable: the query and the filed image side by side, the transform undone, and their difference.

The reuse index keeps hashes and the filed file's path and SHA-256, not its pixels, so the filed image is read
again from that path. It is shown only when it is still there, readable, and the same bytes that were filed;
otherwise the report says why not.

Alignment, in the filed image's frame: the dihedral part of the recorded transform (flip, quarter turn) is undone
exactly; a crop or resize is undone by ORB keypoints and a RANSAC scale + shift fit (as the index's own keypoint
stage), else by resizing the query to the filed image's size. The difference is taken after a linear intensity
match (least squares over the overlap), so a window or contrast change alone does not light it up; the
correlation of the two is reported beside it (different slices of one series correlate highly, yet differ
visibly in the difference view).
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np

from forensics.errors import InputError
from forensics.formatpath import to_gray
from forensics.records import Finding, MedicalImage
from forensics.report.views import png_uri, shrink, to_u8
from forensics.reuse import hashing as H

REUSE_VIEW_PX = 512
DIFF_GAIN = 4  # the difference of two images in [0, 1], times this, as grey levels
MIN_INLIERS = 12


def reuse_views(
    image: MedicalImage,
    findings: list[Finding],
    max_side: int = REUSE_VIEW_PX,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> list[dict[str, Any]]:
    """One entry per reuse match: the match's facts, and either the three aligned pictures or why they are missing."""
    out = []
    for f in findings:
        if f.analyzer != "reuse" or not isinstance(f.data, dict):
            continue
        for m in f.data.get("matches") or []:
            if not isinstance(m, dict) or not m.get("path"):
                continue
            entry: dict[str, Any] = {k: m.get(k) for k in ("path", "claim_id", "method", "transform", "distance")}
            filed, why = load_filed(str(m["path"]), m.get("sha256"), max_bytes, max_pixels)
            if filed is None:
                entry["missing"] = why
            else:
                entry.update(compare(image.pixels, filed.pixels, str(m.get("transform") or "none"), max_side))
            out.append(entry)
    return out


def load_filed(
    path: str, sha256: str | None, max_bytes: int | None = None, max_pixels: int | None = None
) -> tuple[MedicalImage | None, str]:
    """(the filed image, "") or (None, why it cannot be shown)."""
    from forensics.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load

    if path.startswith("<"):
        return None, "the filed image was added from memory (no file was recorded)"
    if not os.path.exists(path):
        return None, "the filed file is no longer at the path the index recorded"
    if not os.access(path, os.R_OK):
        return None, "the filed file is not readable by this user"
    try:
        filed = load(path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, max_bytes=max_bytes or DEFAULT_MAX_BYTES)
    except InputError as exc:
        return None, f"the filed file cannot be read now ({exc.code}: {exc.message})"[:300]
    if sha256 and filed.sha256 != sha256:
        return None, "the file at the recorded path has changed since it was filed (SHA-256 differs)"
    return filed, ""


def _transform_index(label: str) -> int:
    first = label.split(",")[0].strip()
    return H.TRANSFORM_NAMES.index(first) if first in H.TRANSFORM_NAMES else 0


def align(query: np.ndarray, filed: np.ndarray, transform: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(query in the filed image's frame, bool mask of where it has pixels, how it was aligned)."""
    t = _transform_index(transform)
    q = H.undo_transform(query, t)
    how = [f"{H.TRANSFORM_NAMES[t]} undone"] if t else []
    fh, fw = filed.shape[:2]
    if q.shape[:2] == (fh, fw):
        return q, np.ones((fh, fw), bool), ", ".join(how) or "same size, no transform"
    m = _fit(q, filed)
    if m is not None:
        warped = cv2.warpAffine(np.ascontiguousarray(q), m, (fw, fh), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.ones(q.shape[:2], np.uint8), m, (fw, fh), flags=cv2.INTER_NEAREST) > 0
        scale = float(np.hypot(m[0, 0], m[1, 0]))
        how.append(f"keypoint fit (scale {scale:.3f}, shift {m[0, 2]:.0f}, {m[1, 2]:.0f} px)")
        return warped, mask, ", ".join(how)
    resized = cv2.resize(np.ascontiguousarray(q), (fw, fh), interpolation=cv2.INTER_AREA)
    how.append("resized to the filed image's size (too few keypoints for a fit)")
    return resized, np.ones((fh, fw), bool), ", ".join(how)


def _fit(query: np.ndarray, filed: np.ndarray) -> np.ndarray | None:
    """2 x 3 scale + shift matrix from query pixels to filed pixels, or None."""
    (pa, da), (pb, db) = H.keypoints(query), H.keypoints(filed)
    if len(da) < MIN_INLIERS or len(db) < MIN_INLIERS:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < MIN_INLIERS:
        return None
    # keypoints are found at ORB_PX on the longer side: back to native pixels
    sa, sb = (max(1.0, max(x.shape[:2]) / H.ORB_PX) for x in (query, filed))
    a = pa[[x.queryIdx for x in matches]] * np.float32(sa)
    b = pb[[x.trainIdx for x in matches]] * np.float32(sb)
    cv2.setRNGSeed(0)
    m, mask = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000)
    if m is None or mask is None or int(mask.sum()) < MIN_INLIERS:
        return None
    return m


def compare(query: np.ndarray, filed: np.ndarray, transform: str, max_side: int = REUSE_VIEW_PX) -> dict[str, Any]:
    """The three pictures (aligned query, filed, difference) in the filed frame at most ``max_side`` px, and numbers."""
    aligned, mask, how = align(query, filed, transform)
    a, b = to_gray(aligned), to_gray(filed)
    overlap = float(mask.mean())
    av, bv = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if av.size >= 2 and av.std() > 1e-9:
        gain, bias = np.polyfit(av, bv, 1)
    else:
        gain, bias = 1.0, 0.0
    matched = np.clip(gain * a + bias, 0, 1)
    diff = np.where(mask, np.abs(matched - b), 0.0).astype(np.float32)
    corr = float(np.corrcoef(av, bv)[0, 1]) if av.size >= 2 and av.std() > 1e-9 and bv.std() > 1e-9 else None
    mad = float(diff[mask].mean() * 255) if mask.any() else None
    scale = min(1.0, max_side / max(b.shape))
    shown_q = shrink(to_u8(np.where(mask[..., None] if aligned.ndim == 3 else mask, aligned, 0)), scale)
    shown_f = shrink(to_u8(filed), scale)
    shown_d = shrink(np.clip(diff * DIFF_GAIN * 255, 0, 255).astype(np.uint8), scale)
    fh, fw = b.shape
    return {
        "size": [shown_f.shape[1], shown_f.shape[0]],
        "native": [fw, fh],
        "aligned_by": how,
        "overlap": round(overlap, 3),
        "correlation": None if corr is None else round(corr, 3),
        "mean_abs_diff": None if mad is None else round(mad, 2),
        "diff_gain": DIFF_GAIN,
        "query_uri": png_uri(shown_q),
        "filed_uri": png_uri(shown_f),
        "diff_uri": png_uri(shown_d),
    }
