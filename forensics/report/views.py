"""Views that let a person verify a verdict: the pictures behind one image's block in the HTML report.

Computed where the decoded image is at hand (``Scanner.score`` with ``ScanOptions.thumbnails``, so in the scan's
worker processes), kept on ``ScanResult.views`` as plain data (PNG data URIs, numbers, lists) and rendered by
``views.html`` / ``views.js``. Nothing here changes a score.

Per image (every picture's longer side at most ``max_side`` px, area-resampled from native resolution):

- ``base``: the image for the zoomable viewer. Greyscale images with stored values beyond 8 bits (DICOM, NIfTI,
  16-bit PNG/TIFF) carry those values, quantized to 16 bits and packed into the red (high byte) and green (low
  byte) channels of an RGB PNG, with the mapping back to stored units, so the page can apply any window/level;
  8-bit greyscale is a grey PNG (window/level on 0-255), colour an RGB PNG (no window/level).
- ``layers``: error-level analysis for JPEG files (recompressed at ``ELA_QUALITY``, difference x ``ELA_GAIN``), the
  noise residual (image minus its 3 x 3 median, magnitude scaled to its 99.5th percentile), each heatmap of a finding
  as cell values on the score's 0-1 scale (coloured in the page with the legend's colour map), and the copy-move
  overlay (source and target regions, an arrow from source to target) from the localization finding's data.
- ``reuse``: see ``forensics.report.reuseview``.

A part that fails is left out with a note saying why; the scan result itself never fails because of a view.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import cv2
import numpy as np

from forensics.formatpath import to_gray
from forensics.records import Finding, MedicalImage

VIEW_PX = 1024  # default cap on the longer side of every full-size view (report size: ~0.3-1.5 MB per image)
ELA_QUALITY = 90
ELA_GAIN = 20
NOISE_PERCENTILE = 99.5
HEAT_CELLS_MAX = 128  # a heatmap finer than this per side is max-pooled: cell values travel as JSON in the page


def build_views(
    image: MedicalImage,
    findings: list[Finding],
    max_side: int = VIEW_PX,
    *,
    index_path: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    """Everything the report's viewer shows for ``image`` (see the module docstring); plain data only."""
    h, w = image.pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    out: dict[str, Any] = {"native": [w, h], "scale": scale, "max_side": max_side, "layers": [], "notes": []}
    parts = [
        ("base", lambda: _base(image, scale)),
        ("ela", lambda: _ela(image, scale)),
        ("noise", lambda: _noise(image, scale)),
        ("heatmaps", lambda: _heat_layers(image, findings)),
        ("copy-move", lambda: _copymove(findings)),
    ]
    for name, part in parts:
        try:
            got = part()
        except Exception as exc:  # noqa: BLE001 - a view that fails must not fail the scan of the image
            out["notes"].append(f"{name} view not shown: {type(exc).__name__}: {exc}"[:300])
            continue
        if name == "base":
            out["base"] = got
        elif isinstance(got, list):
            out["layers"].extend(got)
        elif got is not None:
            out["layers"].append(got)
    if image.format != "jpeg":
        out["notes"].append("error-level analysis applies to JPEG files only")
    if index_path:
        from forensics.report.reuseview import REUSE_VIEW_PX, reuse_views

        try:
            out["reuse"] = reuse_views(image, findings, max_side=min(max_side, REUSE_VIEW_PX), max_bytes=max_bytes,
                                       max_pixels=max_pixels)
        except Exception as exc:  # noqa: BLE001
            out["notes"].append(f"reuse comparison not shown: {type(exc).__name__}: {exc}"[:300])
    return out


def payload_size(views: dict[str, Any] | None) -> int:
    """Characters the views add to the page (their data URIs and cell values, as JSON)."""
    return len(json.dumps(views)) if views else 0


# ----------------------------------------------------------------------------------------------- pictures


def png_uri(arr: np.ndarray) -> str:
    """PNG data URI of uint8 (h, w) grey or (h, w, 3) RGB; no gamma or colour-profile chunk, so a browser's
    canvas reads the exact values back (the packed 16-bit base view relies on that)."""
    a = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def shrink(x: np.ndarray, scale: float) -> np.ndarray:
    """Area-resample (h, w[, c]) by ``scale`` <= 1; unchanged at 1."""
    if scale >= 1.0:
        return x
    h, w = x.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA)


def to_u8(pixels: np.ndarray) -> np.ndarray:
    """float [0, 1] pixels -> uint8, rounded (exact for 8-bit sources, whose pixels are value / 255)."""
    return np.clip(np.nan_to_num(np.asarray(pixels, np.float32), nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _grey_stored(image: MedicalImage) -> np.ndarray | None:
    """The stored greyscale values (HU for CT, raw counts, NIfTI intensities), when the file has them."""
    s = image.stored
    if s is None or image.pixels.ndim != 2:
        return None
    s = np.asarray(s)
    if s.ndim != 2 or s.shape != image.pixels.shape[:2] or s.dtype.kind not in "uif":
        return None
    return s


def _base(image: MedicalImage, scale: float) -> dict[str, Any]:
    stored = _grey_stored(image)
    if stored is None:
        u8 = shrink(to_u8(image.pixels), scale)
        if u8.ndim == 2:
            return {"kind": "grey8", "uri": png_uri(u8), "size": [u8.shape[1], u8.shape[0]],
                    "offset": 0.0, "step": 1.0, "unit": "", "window": [127.5, 256.0], "invert": False,
                    "range": [0.0, 255.0]}
        return {"kind": "rgb", "uri": png_uri(u8), "size": [u8.shape[1], u8.shape[0]]}
    values = stored.astype(np.float32) if stored.dtype.kind == "f" or scale < 1.0 else stored
    values = shrink(values, scale)
    finite = np.isfinite(values) if values.dtype.kind == "f" else None
    lo = float(values[finite].min()) if finite is not None and finite.any() else float(np.min(values))
    hi = float(values[finite].max()) if finite is not None and finite.any() else float(np.max(values))
    whole = values.dtype.kind in "iu" or (scale >= 1.0 and bool(np.all(values == np.round(values))))
    if whole and hi - lo <= 65535:
        step = 1.0  # integers within 16 bits (rescaled CT is float32 holding whole HU): exact
        q = (np.nan_to_num(values).astype(np.int64) - int(lo)).astype(np.uint16)
    else:
        step = (hi - lo) / 65535.0 if hi > lo else 1.0
        v = np.nan_to_num(values.astype(np.float64), nan=lo, posinf=hi, neginf=lo)
        q = np.clip(np.round((v - lo) / step), 0, 65535).astype(np.uint16)
    packed = np.zeros((*q.shape, 3), np.uint8)
    packed[..., 0] = q >> 8
    packed[..., 1] = q & 0xFF
    return {"kind": "grey16", "uri": png_uri(packed), "size": [q.shape[1], q.shape[0]], "offset": lo,
            "step": step, "unit": _unit(image), "window": _window(image, lo, hi), "invert": _inverted(image),
            "range": [lo, hi]}


def _unit(image: MedicalImage) -> str:
    ds = image.dicom
    if ds is not None:
        unit = str(ds.get("RescaleType") or "").strip()
        if unit:
            return unit
        if image.modality == "CT":
            return "HU"
    return ""


def _inverted(image: MedicalImage) -> bool:
    ds = image.dicom
    return ds is not None and str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def _window(image: MedicalImage, lo: float, hi: float) -> list[float]:
    """[centre, width] the loader used: the file's window, else its robust range, else the full range."""
    m = image.metadata
    try:
        if m.get("window_center") is not None and m.get("window_width"):
            return [float(m["window_center"]), float(m["window_width"])]
        if m.get("window_low") is not None and m.get("window_high") is not None:
            a, b = float(m["window_low"]), float(m["window_high"])
            if b > a:
                return [(a + b) / 2, b - a]
    except (TypeError, ValueError):
        pass
    return [(lo + hi) / 2, max(hi - lo, 1e-6)]


def _ela(image: MedicalImage, scale: float) -> dict[str, Any] | None:
    """Error-level analysis: a region saved at another quality (pasted, retouched) recompresses differently."""
    if image.format != "jpeg":
        return None
    u8 = to_u8(image.pixels)  # the decoded JPEG at native resolution: the 8 x 8 grid is only there
    enc = u8 if u8.ndim == 2 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, ELA_QUALITY])
    if not ok:  # pragma: no cover
        raise ValueError("JPEG encoding failed")
    again = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if again.ndim == 3:
        again = cv2.cvtColor(again, cv2.COLOR_BGR2RGB)
    diff = np.abs(u8.astype(np.int16) - again.astype(np.int16)).astype(np.float32)
    if diff.ndim == 3:  # the largest channel difference: grey, a third of the bytes of a colour map
        diff = diff.max(axis=2)
    mean = float(diff.mean())
    shown = np.clip(shrink(diff, scale) * ELA_GAIN, 0, 255).round().astype(np.uint8)
    return {"id": "ela", "label": "ELA", "mode": "replace", "opacity": 1.0, "uri": png_uri(shown),
            "caption": f"error level: |image − JPEG(q={ELA_QUALITY}) of it| × {ELA_GAIN} (largest channel); mean "
                       f"difference {mean:.2f} grey levels. Uniform error levels are expected; a region that stands "
                       f"out was saved differently."}


def _noise(image: MedicalImage, scale: float) -> dict[str, Any]:
    """Noise residual: smoothed or pasted regions break the grain of the rest of the image."""
    stored = _grey_stored(image)
    g = to_gray(image.pixels) if stored is None else np.nan_to_num(stored.astype(np.float32))
    r = np.abs(g - cv2.medianBlur(g, 3))
    top = float(np.percentile(r, NOISE_PERCENTILE))
    if top <= 0:
        top = float(r.max()) or 1.0
    shown = (np.clip(shrink(r, scale) / top, 0, 1) * 255).round().astype(np.uint8)
    unit = " " + _unit(image) if stored is not None and _unit(image) else (" (stored units)" if stored is not None
                                                                          else " (of 1)")
    return {"id": "noise", "label": "Noise", "mode": "replace", "opacity": 1.0, "uri": png_uri(shown),
            "caption": f"noise residual: |image − 3×3 median|, white at {top:.4g}{unit} (its {NOISE_PERCENTILE}th "
                       f"percentile). Grain should look alike across similar tissue; a region that is darker "
                       f"(smoothed) or has other grain stands out."}


def heat_box(finding: Finding, image: MedicalImage) -> list[int]:
    """[x, y, w, h] in native px that ``finding.heatmap`` covers: ``data["heatmap_box"]`` when the analyzer says,
    the centre square for pixel detectors (``formatpath.standardize`` crops to it), else the whole image."""
    h, w = image.pixels.shape[:2]
    box = finding.data.get("heatmap_box") if isinstance(finding.data, dict) else None
    if isinstance(box, (list, tuple)) and len(box) == 4:
        return [int(v) for v in box]
    if finding.kind == "pixel":
        s = min(h, w)
        return [(w - s) // 2, (h - s) // 2, s, s]
    return [0, 0, w, h]


def _heat_layers(image: MedicalImage, findings: list[Finding]) -> list[dict[str, Any]]:
    layers = []
    for f in findings:
        if f.heatmap is None:
            continue
        heat = np.asarray(f.heatmap, dtype=np.float32)
        if heat.ndim == 3 and heat.shape[2] == 1:
            heat = heat[:, :, 0]
        if heat.ndim != 2 or heat.size == 0:
            continue
        heat = np.clip(np.nan_to_num(heat, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        k = math.ceil(max(heat.shape) / HEAT_CELLS_MAX)
        if k > 1:  # max-pool: a hot cell stays hot
            ph, pw = -heat.shape[0] % k, -heat.shape[1] % k
            heat = np.pad(heat, ((0, ph), (0, pw))).reshape(heat.shape[0] // k + (ph > 0), k, -1, k).max(axis=(1, 3))
        rows, cols = heat.shape
        peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
        regions = f.data.get("regions") if isinstance(f.data, dict) else None
        marked = "".join(
            f" Region at ({r['at'][0]}, {r['at'][1]}) px, box {r['box']}, {r['area_px']} px"
            + (f" ({r['area_mm2']} mm²)" if "area_mm2" in r else "") + f", peak {r['peak']:.2f}."
            for r in regions or () if isinstance(r, dict) and {"at", "box", "area_px", "peak"} <= set(r))
        layers.append({
            "id": f"heat-{f.analyzer}", "label": f"{f.analyzer} heatmap", "mode": "heat", "opacity": 0.55,
            "heat": {"rows": rows, "cols": cols, "values": [round(float(v), 3) for v in heat.ravel()],
                     "box": heat_box(f, image)},
            "caption": f"{f.analyzer}: {rows}×{cols} cells on the score's 0–1 scale (same colours as the legend); "
                       f"highest {float(heat.max()):.2f} at row {peak[0] + 1}, column {peak[1] + 1}.{marked}",
        })
    return layers


def _copymove(findings: list[Finding]) -> dict[str, Any] | None:
    """Source and target of the largest copied region the localization analyzer verified."""
    for f in findings:
        d = f.data if isinstance(f.data, dict) else {}
        if d.get("method") not in ("copymove", "fused") or not d.get("at") or not d.get("source_at"):
            continue
        area = float(d.get("area_px") or 0)
        side = max(8.0, math.sqrt(area))
        target = d.get("box") or _square(d["at"], side)
        source = d.get("source_box") or _square(d["source_at"], side)
        score = f.score if f.score is not None else 0.0
        strength = "evidence" if score >= 0.5 else "below the evidence threshold (a chance match, most likely)"
        return {
            "id": "copymove", "label": "Copy-move", "mode": "svg", "opacity": 1.0,
            "regions": {"source": [int(v) for v in source], "target": [int(v) for v in target],
                     "from": [int(v) for v in d["source_at"]], "to": [int(v) for v in d["at"]]},
            "caption": f"copy-move: the fine grain of a {int(area)} px region at ({d['at'][0]}, {d['at'][1]}) (red, "
                       f"named the copy) matches the region at ({d['source_at'][0]}, {d['source_at'][1]}) (cyan, named "
                       f"the source) pixel for pixel; arrow from source to copy; score {score:.2f}, {strength}. "
                       f"Identical grain shows that one region was pasted from the other; compare the two regions' "
                       f"content and edges to judge which one was painted over.",
        }
    return None


def _square(centre: list[int], side: float) -> list[int]:
    half = side / 2
    return [round(centre[0] - half), round(centre[1] - half), round(side), round(side)]


# ----------------------------------------------------------------------------------------------- the page

VIEWS_BUDGET = 64 << 20  # characters of views per report; images past it (lowest risk last) show a note instead


def page_views(results: list, budget: int = VIEWS_BUDGET) -> list[dict[str, Any]]:
    """Per result, in the order given (the report's, highest risk first): ``{"data", "config", "note"}`` for
    ``views.html``. ``config`` is what ``views.js`` reads (the views without their pictures)."""
    out, used = [], 0
    for r in results:
        views = getattr(r, "views", None)
        if r.status != "ok":
            out.append({"data": None, "config": None, "note": None})
            continue
        if not views:
            out.append({"data": None, "config": None, "note": "No views for this record: it was read back from an "
                        "earlier (resumed) run, or views were turned off (--view-px 0)."})
            continue
        size = payload_size(views)
        if used + size > budget:
            out.append({"data": None, "config": None, "note": f"Views left out: the report's {budget >> 20} MB for "
                        "views went to images of higher risk (a smaller --view-px fits more)."})
            continue
        used += size
        out.append({"data": views, "config": client_config(views), "note": None})
    return out


def client_config(views: dict[str, Any]) -> dict[str, Any]:
    """What the page's script needs: numbers and captions, not the pictures (those are <img> elements)."""
    base = views.get("base") or {}
    native, size = views.get("native") or [0, 0], base.get("size") or [0, 0]
    capped = size[0] < native[0] or size[1] < native[1]
    caption = (f"image: {native[0]} × {native[1]} px" + (
        f", shown at {size[0]} × {size[1]} (longer side capped at {views.get('max_side')} px for the report's size)"
        if capped else " (full resolution)"))
    if base.get("kind") == "grey16":
        caption += f"; stored values {base['range'][0]:.6g} to {base['range'][1]:.6g} {base.get('unit') or ''}".rstrip()
        caption += ", quantized to 16 bits" if base.get("step") != 1.0 else ", exact"
    return {
        "base": {k: v for k, v in base.items() if k != "uri"},
        "scale": views.get("scale", 1.0),
        "native": native,
        "caption": caption + ".",
        "layers": [{k: v for k, v in x.items() if k not in ("uri", "regions")} for x in views.get("layers") or []],
    }
