"""Conformance battery over every registered analyzer (what ``benchmarks.detectors.check_detector`` is for detectors).

Each entry of ``list_analyzers()`` must: say its name, version and kind; answer ``availability()`` with
``(bool, str)``; accept the settings it declares (and declare only ``ScanOptions`` fields, which the Scanner
passes); list model files that exist; and turn a grey image, an RGB one, a tiny one, a PNG file and a real DICOM
into a Finding stamped with its name and kind, with a score, evidence and heatmap in range.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensics.analyzers import ANALYZERS, analyzer_settings, create_analyzer, list_analyzers
from forensics.fusion import BUNDLED_WEIGHTS
from forensics.records import Evidence, Finding, MedicalImage
from forensics.scanner import ScanOptions

KINDS = {"rules", "mark", "pixel", "realness", "reuse", "local"}
OPTION_FIELDS = {f.name for f in dataclasses.fields(ScanOptions)}


def _dicom_path() -> str:
    import pydicom.examples

    return str(pydicom.examples.get_path("ct"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> dict[str, str]:
    """A value for every setting an analyzer may declare: a reuse index holding a copy of the example DICOM (so the
    reuse analyzer finds a match), and the bundled detector weights."""
    from forensics.reuse import add_paths

    d = tmp_path_factory.mktemp("conformance")
    filed = d / "filed_ct.dcm"
    shutil.copyfile(_dicom_path(), filed)
    index = d / "reuse.sqlite"
    assert add_paths(index, [filed], "earlier-claim")["added"] == 1
    from forensics.series import Verdict
    from forensics.signatures import load_trust_list
    from forensics.signatures.throwaway import make_chain
    from forensics.watermark import WatermarkKey

    trust = load_trust_list(make_chain(d / "ca")["root"])
    # the example DICOM as a flagged slice of a series (the series analyzer reports what the scan computed)
    flagged = Verdict(z=12.0, score=0.97, index=1, n_slices=3, neighbours=["a.dcm", "b.dcm"], statistic="content",
                      box=[16, 16, 32, 32], area_px=256, cell=8, flagged=True,
                      grid=[[0.0] * 16 for _ in range(15)] + [[12.0] + [0.0] * 15])
    return {"index_path": str(index), "weights_dir": str(BUNDLED_WEIGHTS), "trust_list": trust,
            "watermark_key": WatermarkKey("conformance-secret-key"), "series": {_dicom_path(): flagged}}


def _memory(pixels: np.ndarray, name: str) -> MedicalImage:
    x = np.clip(pixels, 0, 1).astype(np.float32)
    return MedicalImage(pixels=x, path=f"<memory:{name}>", sha256=name, format="png")


def _images(tmp_path: Path) -> dict[str, MedicalImage]:
    from forensics.io import load

    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.random((12, 12)).astype(np.float32), (160, 128), interpolation=cv2.INTER_CUBIC)
    gray = np.clip(smooth + rng.normal(0, 0.03, smooth.shape), 0, 1).astype(np.float32)
    rgb = np.clip(np.stack([gray, gray[::-1], gray[:, ::-1]], axis=-1), 0, 1).astype(np.float32)
    png = tmp_path / "gray.png"
    cv2.imwrite(str(png), np.clip(gray * 255 + 0.5, 0, 255).astype(np.uint8))
    return {
        "gray": _memory(gray, "gray"),
        "rgb": _memory(rgb, "rgb"),
        "tiny": _memory(rng.random((8, 8)), "tiny"),
        "png_file": load(png),
        "dicom_file": load(_dicom_path()),
    }


def _check_finding(f: Finding, analyzer, label: str) -> None:
    where = f"{analyzer.name} on {label}"
    assert isinstance(f, Finding), where
    assert f.analyzer == analyzer.name, where
    assert f.kind == analyzer.kind, f"{where}: the finding must carry the analyzer's kind (fusion reads it)"
    assert f.score is None or (isinstance(f.score, float) and 0.0 <= f.score <= 1.0), f"{where}: score {f.score!r}"
    assert isinstance(f.decisive, bool) and isinstance(f.data, dict), where
    assert not (f.decisive and f.score is None), f"{where}: a decisive finding needs a score"
    for e in f.evidence:
        assert isinstance(e, Evidence), where
        assert isinstance(e.code, str) and e.code, f"{where}: evidence code {e.code!r}"
        assert isinstance(e.message, str), where
        assert 0.0 <= float(e.weight) <= 1.0, f"{where}: {e.code} weight {e.weight!r}"
    if f.heatmap is not None:
        h = np.asarray(f.heatmap)
        assert h.ndim == 2 and np.issubdtype(h.dtype, np.floating), f"{where}: heatmap {h.dtype} {h.shape}"
        assert np.isfinite(h).all() and h.min() >= 0.0 and h.max() <= 1.0, f"{where}: heatmap out of [0, 1]"
    f.to_dict()  # it goes into the JSON line


def test_the_registry_lists_the_built_in_analyzers():
    assert {"metadata", "watermark", "frequency", "cnn", "reuse", "localization"} <= set(list_analyzers())


@pytest.mark.parametrize("name", list_analyzers())
def test_analyzer_conforms(name, settings, tmp_path):
    declared = analyzer_settings(name)
    assert isinstance(declared, tuple) and set(declared) <= OPTION_FIELDS, \
        f"{name} declares {declared}; the Scanner can pass only ScanOptions fields {sorted(OPTION_FIELDS)}"
    analyzer = create_analyzer(name, **{key: settings[key] for key in declared})
    assert analyzer.settings == declared
    assert analyzer.name == name
    assert isinstance(analyzer.version, str) and analyzer.version
    assert analyzer.kind in KINDS
    assert isinstance(analyzer.default, bool)
    ok, why = analyzer.availability()
    assert isinstance(ok, bool) and isinstance(why, str)
    assert ok or why, "an unavailable analyzer must say why"
    if not ok:
        pytest.skip(f"{name} unavailable here: {why}")
    assert all(Path(p).is_file() for p in analyzer.model_files())
    assert all(len(h) == 64 for h in analyzer.model_hashes().values())
    for label, image in _images(tmp_path).items():
        before = image.pixels.copy()
        _check_finding(analyzer.analyze(image), analyzer, label)
        assert np.array_equal(image.pixels, before), f"{name} modified the pixels of {label}"


def test_the_reuse_analyzer_of_the_battery_finds_its_filed_copy(settings):
    """The battery's index is not empty: the reuse checks above ran on a real match, not only on 'nothing'."""
    from forensics.io import load

    f = create_analyzer("reuse", index_path=settings["index_path"]).analyze(load(_dicom_path()))
    assert f.score is not None and f.data["matches"][0]["claim_id"] == "earlier-claim"


def test_analyzer_settings_are_read_before_building_and_unknown_names_fail():
    assert analyzer_settings("reuse") == ("index_path",)
    assert set(analyzer_settings("cnn")) == {"weights_dir"}
    assert analyzer_settings("metadata") == ("trust_list",)
    assert analyzer_settings("reuse") == ANALYZERS.get("reuse").settings
    with pytest.raises(KeyError, match="unknown analyzer"):
        analyzer_settings("no_such_analyzer")
