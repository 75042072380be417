"""The report's per-image views (forensics.report.views, reuseview, views.html/js): what they hold, and in chromium
that they zoom, pan and window."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pydicom import examples

from forensics.io import load
from forensics.records import Finding, ScanResult
from forensics.report import write_report
from forensics.report.views import build_views, page_views, payload_size
from forensics.scanner import Scanner, ScanOptions

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CT = str(examples.get_path("ct"))  # 128 x 128 CT, int16 stored values rescaled to HU


def _decode(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(",", 1)[1])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _textured(size: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.45 + 0.2 * np.sin(3 * xx + 1) * np.cos(2 * yy)
    return np.clip(base + rng.normal(0, 0.02, (size, size)), 0, 1).astype(np.float32)


def _clone_stamped(img: np.ndarray, cx: int, cy: int, r: int, dx: int, dy: int) -> np.ndarray:
    """The disk at (cx, cy) gets the grain of the disk at (cx + dx, cy + dy): a clone-stamp edit."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    low = cv2.GaussianBlur(img, (0, 0), 2.0)
    donor = np.roll(img - low, (-dy, -dx), axis=(0, 1))
    return np.clip(np.where(disk, low + 0.05 + donor, img), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("views")
    photo = (np.clip(_textured(320, 1)[:, :, None] * [1.0, 0.8, 0.6], 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(d / "photo.jpg"), photo[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 80])
    clone = _clone_stamped(_textured(), 90, 150, 14, 60, -45)
    cv2.imwrite(str(d / "clone.png"), np.round(clone * 255).astype(np.uint8))
    big = (_textured(512, 2) * 65535).astype(np.uint16)
    cv2.imwrite(str(d / "big16.png"), cv2.resize(big, (3000, 2000), interpolation=cv2.INTER_LINEAR))
    return {"jpeg": str(d / "photo.jpg"), "clone": str(d / "clone.png"), "ct": CT, "big": str(d / "big16.png")}


# ------------------------------------------------------------------------------------------------ what they hold


def test_dicom_base_carries_the_stored_values_exactly():
    image = load(CT)
    v = build_views(image, [])
    base = v["base"]
    assert base["kind"] == "grey16" and base["unit"] == "HU" and base["step"] == 1.0
    packed = _decode(base["uri"]).astype(np.int64)
    values = base["offset"] + (packed[..., 0] * 256 + packed[..., 1]) * base["step"]
    np.testing.assert_array_equal(values, np.asarray(image.stored, np.float64))
    assert base["window"][1] > 0 and base["range"] == [float(image.stored.min()), float(image.stored.max())]
    assert [layer["id"] for layer in v["layers"]] == ["noise"]  # no ELA: not a JPEG, and it says so
    assert any("JPEG files only" in note for note in v["notes"])


def test_jpeg_gets_error_level_analysis_and_noise(files):
    v = build_views(load(files["jpeg"]), [])
    assert v["base"]["kind"] == "rgb"
    ela = next(layer for layer in v["layers"] if layer["id"] == "ela")
    diff = _decode(ela["uri"])
    assert diff.shape == (320, 320) and 0 < diff.mean() < 200  # recompression changes something, not everything
    noise = _decode(next(layer for layer in v["layers"] if layer["id"] == "noise")["uri"])
    assert noise.shape == (320, 320) and noise.std() > 5


def test_large_images_are_capped_and_say_so(files):
    image = load(files["big"])
    v = build_views(image, [], max_side=512)
    assert v["native"] == [3000, 2000] and v["base"]["size"] == [512, 341]
    assert v["base"]["kind"] == "grey16" and v["base"]["step"] > 0  # 16-bit PNG: stored values kept, quantized
    config = page_views([ScanResult(path="x", status="ok", views=v)])[0]["config"]
    assert "capped at 512 px" in config["caption"] and "uri" not in config["base"]


def test_pixel_heatmaps_cover_the_centre_square_they_were_computed_on():
    image = load(CT)
    image.pixels = np.zeros((100, 160), np.float32)
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    pixel = Finding("cnn", 0.3, heatmap=heat, kind="pixel")
    local = Finding("localization", 0.1, heatmap=heat, kind="local")
    image.stored = None
    layers = {layer["id"]: layer for layer in build_views(image, [pixel, local])["layers"]}
    assert layers["heat-cnn"]["heat"]["box"] == [30, 0, 100, 100]  # formatpath.standardize's centre crop
    assert layers["heat-localization"]["heat"]["box"] == [0, 0, 160, 100]
    assert layers["heat-cnn"]["heat"]["values"][-1] == 1.0 and layers["heat-cnn"]["mode"] == "heat"


def test_copy_move_overlay_marks_source_and_target(files):
    result = Scanner(ScanOptions(analyzers=["localization"], thumbnails=True)).scan_file(files["clone"])
    layer = next(x for x in result.views["layers"] if x["id"] == "copymove")
    spots = [layer["regions"]["from"], layer["regions"]["to"]]
    assert any(abs(x - 90) < 6 and abs(y - 150) < 6 for x, y in spots)  # the clone ...
    assert any(abs(x - 150) < 6 and abs(y - 105) < 6 for x, y in spots)  # ... and where its grain came from
    for key in ("source", "target"):
        x, y, w, h = layer["regions"][key]
        cx, cy = layer["regions"]["from" if key == "source" else "to"]
        assert x <= cx <= x + w and y <= cy <= y + h and 10 < w < 60


def test_a_failing_view_is_a_note_not_a_failed_scan(files, monkeypatch):
    import forensics.report.views as views

    def boom(*_):
        raise RuntimeError("no noise today")

    monkeypatch.setattr(views, "_noise", boom)
    result = Scanner(ScanOptions(analyzers=["metadata"], thumbnails=True)).scan_file(files["jpeg"])
    assert result.status == "ok" and result.views["base"]
    assert any("noise view not shown: RuntimeError: no noise today" in n for n in result.views["notes"])


def test_budget_and_missing_views_leave_a_note():
    small = {"base": {"kind": "rgb", "uri": "data:" + "x" * 100, "size": [1, 1]}, "layers": [], "native": [1, 1]}
    results = [ScanResult(path=f"{i}", status="ok", views=small) for i in range(3)]
    results.append(ScanResult(path="old", status="ok"))
    got = page_views(results, budget=int(2.5 * payload_size(small)))
    assert [g["data"] is not None for g in got] == [True, True, False, False]
    assert "higher risk" in got[2]["note"] and "resumed" in got[3]["note"]


def test_reuse_match_shown_side_by_side_with_the_transform_undone(tmp_path):
    from forensics.reuse import add_files

    filed = tmp_path / "filed.png"
    query = tmp_path / "query.png"
    img = (_textured(256, 5) * 255).astype(np.uint8)
    cv2.imwrite(str(filed), img)
    cv2.imwrite(str(query), img[:, ::-1].copy())  # the same image, mirrored
    db = tmp_path / "index.sqlite"
    add_files(str(db), [str(filed)], "A")
    scanner = Scanner(ScanOptions(analyzers=["reuse"], thumbnails=True, index_path=str(db)))
    result = scanner.scan_file(str(query), claim_id="B")
    (entry,) = result.views["reuse"]
    assert entry["transform"].startswith("hflip") and "hflip undone" in entry["aligned_by"]
    assert entry["correlation"] > 0.99 and entry["mean_abs_diff"] < 1.0
    np.testing.assert_array_equal(_decode(entry["query_uri"]), img)  # undone: the query now looks like the filed one
    assert _decode(entry["diff_uri"]).max() <= 8

    html = write_report([result], tmp_path / "out", {})["html"].read_text()
    assert html.count('class="vw-panes"') == 1 and "query, transform undone" in html

    cv2.imwrite(str(filed), img // 2)  # the filed file changed since it was filed
    entry = scanner.scan_file(str(query), claim_id="B").views["reuse"][0]
    assert "changed since it was filed" in entry["missing"] and "diff_uri" not in entry
    filed.unlink()
    entry = scanner.scan_file(str(query), claim_id="B").views["reuse"][0]
    assert "no longer at the path" in entry["missing"]
    html = write_report([scanner.scan_file(str(query), claim_id="B")], tmp_path / "out", {})["html"].read_text()
    assert "Filed image not shown: the filed file is no longer at the path" in html


# ------------------------------------------------------------------------------------------------ in chromium


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (/usr/bin/chromium or on PATH)")
def test_viewer_zooms_pans_and_windows_in_chromium(files, tmp_path):
    from benchmarks.reader.browser import Browser
    from cli import main

    out = tmp_path / "report"
    # --no-modality-gate: the drawn test pictures look like no known modality, and this test is about the viewer
    run = CliRunner().invoke(main, ["audit", files["jpeg"], files["ct"], files["clone"], "--out", str(out), "-q",
                                    "--analyzers", "metadata,localization", "--view-px", "512", "--no-modality-gate"])
    assert run.exit_code == 0, run.output
    html = (out / "report.html").read_text()
    assert len(html) < 3_000_000  # three images: well under a megabyte each
    assert html.count("data:image/png;base64,") >= 3 + 2 + 1  # everything inline: base, ELA, noise per image ...
    assert "src=\"http" not in html  # ... and nothing to fetch

    with Browser(width=1280, height=1000, executable=CHROMIUM) as b:
        b.goto((out / "report.html").resolve().as_uri())
        b.wait_for("document.readyState === 'complete' && document.body.hasAttribute('data-views-ready')")
        assert b.eval("document.body.getAttribute('data-views-ready')") == "3"
        assert b.eval("document.querySelectorAll('[data-viewer][data-started]').length") == 0  # started when opened
        b.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
        b.wait_for("document.querySelectorAll('[data-viewer][data-started]').length === 3")
        ids = {p: b.eval(f"document.querySelector('tbody[data-path$=\"{Path(p).name}\"] [data-viewer]').id")
               for p in (files["jpeg"], files["ct"], files["clone"])}
        jpeg, ct, clone = (f"#{ids[files[k]]}" for k in ("jpeg", "ct", "clone"))

        def layers(sel):
            return b.eval(f"[...document.querySelectorAll('{sel} button[data-layer]')].map(x => x.dataset.layer)")

        assert layers(jpeg)[:3] == ["", "ela", "noise"] and "heat-localization" in layers(jpeg)
        assert "ela" not in layers(ct) and "noise" in layers(ct) and "copymove" in layers(clone)

        # zoom: the wheel about the pointer, the keyboard, the buttons; drag pans
        b.eval(f"document.querySelector('{ct}').scrollIntoView()")
        x, y, w, h = b.eval(f"(() => {{ const r = document.querySelector('{ct} .vw-stage').getBoundingClientRect();"
                          f" return [r.left, r.top, r.width, r.height]; }})()")
        zoom = lambda: float(b.eval(f"document.querySelector('{ct}').dataset.zoom"))  # noqa: E731
        fit = zoom()
        b.wheel(x + w / 2, y + h / 2, -400)
        assert zoom() > 1.5 * fit
        b.eval(f"document.querySelector('{ct} .vw-stage').focus()")
        before = zoom()
        b.key("+")
        assert zoom() == pytest.approx(before * 1.5, rel=1e-3)
        b.key("0")
        assert zoom() == pytest.approx(fit, rel=1e-3)
        b.eval(f"document.querySelector('{ct} button[data-act=\"in\"]').click()")
        assert zoom() == pytest.approx(fit * 1.5, rel=1e-3)
        px = float(b.eval(f"document.querySelector('{ct}').dataset.x"))
        b.drag(x + w / 2, y + h / 2, x + w / 2 + 50, y + h / 2)
        assert float(b.eval(f"document.querySelector('{ct}').dataset.x")) == pytest.approx(px + 50, abs=1)

        # window/level works on the stored HU: the lung window shows other pixels than the file's window
        canvas = f"document.querySelector('{ct} canvas.vw-base')"
        grab = f"Array.from({canvas}.getContext('2d').getImageData(0, 0, 128, 128).data.filter((_, i) => i % 4 == 0))"
        file_window = b.eval(grab)
        b.eval(f"document.querySelector('{ct} button[data-wl=\"-600,1500\"]').click()")
        assert b.eval(f"document.querySelector('{ct}').dataset.wl") == "-600,1500"
        lung = b.eval(grab)
        assert np.abs(np.array(lung) - np.array(file_window)).mean() > 5
        # the slider too, and a pixel's grey follows the formula on its stored value
        b.eval(f"(() => {{ const s = document.querySelector('{ct} .vw-w'); s.value = 400;"
             f" s.dispatchEvent(new Event('input')); }})()")
        level = float(b.eval(f"document.querySelector('{ct}').dataset.wl.split(',')[0]"))
        hu = float(load(CT).stored[64, 64])
        expect = np.clip((hu - (level - 200)) * 255 / 400, 0, 255)
        assert abs(b.eval(grab)[64 * 128 + 64] - expect) <= 1

        # layers: the heatmap is drawn in the legend's colours, the copy-move overlay shows
        b.eval(f"document.querySelector('{clone} button[data-layer=\"copymove\"]').click()")
        assert b.eval(f"getComputedStyle(document.querySelector('{clone} svg.vw-copy')).display") != "none"
        assert b.eval(f"document.querySelector('{clone} .vw-caption').textContent").startswith("copy-move")
        b.eval(f"document.querySelector('{clone} button[data-layer=\"heat-localization\"]').click()")
        assert b.eval(f"document.querySelector('{clone} canvas.vw-heat').dataset.drawn") == "1"
        assert b.eval(f"!document.querySelector('{clone} .vw-legend').hidden")
        b.eval(f"document.querySelector('{jpeg} button[data-layer=\"ela\"]').click()")
        assert b.eval(f"document.querySelector('{jpeg} img[data-layer=\"ela\"]').naturalWidth") == 320
        shot = b.screenshot()
    keep = os.environ.get("MEDAUDIT_REPORT_SCREENSHOT")
    if keep:
        Path(keep).with_suffix(".views.png").write_bytes(shot)
