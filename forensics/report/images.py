"""Images inlined into the HTML report: thumbnails and heatmap overlays as base64 PNG data URIs.

Everything is inlined so that a report is one file that opens anywhere and writes nothing beside itself.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

MAX_SIDE = 160  # px; producers already send thumbnails this small, larger ones are shrunk here


def _as_uint8_image(image: np.ndarray) -> np.ndarray | None:
    """A uint8 (h, w) or RGB (h, w, 3) array no larger than MAX_SIDE, or None when ``image`` is not an image."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        return None
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.isfinite(arr).any() and np.nanmax(arr) <= 1.0:  # float image in [0, 1]
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).round().astype(np.uint8)
    h, w = arr.shape[:2]
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


def png_data_uri(rgb_or_gray: np.ndarray) -> str:
    """PNG data URI of a uint8 (h, w) or RGB (h, w, 3) image."""
    arr = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def thumbnail_uri(thumbnail: np.ndarray | None) -> str | None:
    """Data URI of a result's thumbnail (uint8 (h, w) or (h, w, 3)), or None when there is none."""
    if thumbnail is None:
        return None
    arr = _as_uint8_image(thumbnail)
    return None if arr is None else png_data_uri(arr)


def overlay_uri(heatmap: np.ndarray | None, thumbnail: np.ndarray | None, alpha: float = 0.65) -> str | None:
    """Data URI of ``heatmap`` (float (h, w) in [0, 1]) coloured and blended over ``thumbnail``.

    The heatmap is stretched to the thumbnail with nearest-neighbour sampling, so patch grids stay visibly
    patches rather than suggesting a finer localisation than the analyzer made. Opacity grows with the value:
    cold regions show the image, hot ones the colour. Without a thumbnail the coloured heatmap stands alone.
    """
    if heatmap is None:
        return None
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim == 3 and heat.shape[2] == 1:
        heat = heat[:, :, 0]
    if heat.ndim != 2 or heat.size == 0:
        return None
    heat = np.clip(np.nan_to_num(heat, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    base = _as_uint8_image(thumbnail) if thumbnail is not None else None
    if base is None:
        h, w = heat.shape
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        base = np.full((size[1], size[0], 3), 255, np.uint8)
    elif base.ndim == 2:
        base = np.repeat(base[:, :, None], 3, axis=2)
    h, w = base.shape[:2]
    heat = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    colour = cv2.applyColorMap((heat * 255).round().astype(np.uint8), cv2.COLORMAP_TURBO)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    a = (alpha * heat)[:, :, None]
    out = base.astype(np.float32) * (1 - a) + colour * a
    return png_data_uri(np.clip(out, 0, 255).round().astype(np.uint8))
