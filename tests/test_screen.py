"""Claim screening from the CLI: reused, synthetic and clean claims, locally and on dask."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main

pytest.importorskip("forensics.reuse")


@pytest.fixture
def claims_csv(tmp_path, mixed_folder):
    """claim A: a real CT; claim B: the same CT flipped (reuse); claim C: an A1111 PNG; claim D: an ultrasound (no
    pixel analyzer covers it) and a missing file."""
    import pydicom
    import pydicom.examples

    ds = pydicom.dcmread(mixed_folder / "real" / "ct.dcm")
    flipped = tmp_path / "flipped.png"
    pixels = ds.pixel_array.astype(np.float32)
    pixels = (pixels - pixels.min()) / np.ptp(pixels)
    cv2.imwrite(str(flipped), (pixels[:, ::-1] * 255).astype(np.uint8))
    shutil.copyfile(mixed_folder / "synthetic" / "a1111.png", tmp_path / "gen.png")
    shutil.copyfile(pydicom.examples.get_path("rgb_color"), tmp_path / "us.dcm")
    rows = ["claim_id,path", f"A,{mixed_folder / 'real' / 'ct.dcm'}", "B,flipped.png", "C,gen.png",
            "D,us.dcm", "D,missing.png"]
    path = tmp_path / "claims.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _claims(out):
    return {c["claim_id"]: c for c in map(json.loads, (out / "claims.jsonl").read_text().splitlines())}


def test_screen_names_the_cause_of_each_flagged_claim(claims_csv, tmp_path):
    out = tmp_path / "screen"
    result = CliRunner().invoke(main, ["screen", "--quiet", str(claims_csv), "--out", str(out), "--fail-on", "high"])
    assert result.exit_code == 1, result.output
    claims = _claims(out)
    assert claims["C"]["level"] == "high" and any("png.a1111_parameters" in r for r in claims["C"]["reasons"])
    assert claims["B"]["reuse_hits"] and claims["B"]["reuse_hits"][0]["matched_claim"] == "A"
    assert claims["D"]["errors"] == 1 and claims["D"]["level"] == "incomplete"
    images = [json.loads(x) for x in (out / "images.jsonl").read_text().splitlines()]
    assert len(images) == 5 and all(r["claim_id"] for r in images)
    report = json.loads((out / "report.json").read_text())
    assert [c["claim_id"] for c in report["claims"]][0] == "C"
    assert '<table id="claims">' in (out / "report.html").read_text()


def test_screen_resume_keeps_every_image_once(claims_csv, tmp_path):
    out = tmp_path / "screen"
    assert CliRunner().invoke(main, ["screen", "-q", str(claims_csv), "--out", str(out)]).exit_code == 0
    again = CliRunner().invoke(main, ["screen", "-q", str(claims_csv), "--out", str(out), "--resume"])
    assert again.exit_code == 0, again.output
    images = [json.loads(x) for x in (out / "images.jsonl").read_text().splitlines()]
    assert len({(r["claim_id"], r["path"]) for r in images}) == len(images) == 5


def test_screen_rejects_a_csv_without_the_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("claim,file\nA,x.png\n")
    assert CliRunner().invoke(main, ["screen", str(bad), "--out", str(tmp_path / "o")]).exit_code == 2


@pytest.mark.slow
def test_screen_on_dask_matches_local(claims_csv, tmp_path):
    pytest.importorskip("dask.distributed")
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert CliRunner().invoke(main, ["screen", "-q", str(claims_csv), "--out", str(local)]).exit_code == 0
    result = CliRunner().invoke(main, ["screen", "-q", str(claims_csv), "--out", str(dask), "--engine", "dask",
                                       "--workers", "2"])
    assert result.exit_code == 0, result.output
    strip = lambda cs: {k: (c["level"], c["max_risk"], len(c["reuse_hits"])) for k, c in cs.items()}  # noqa: E731
    assert strip(_claims(local)) == strip(_claims(dask))


def test_index_add_query_and_scan_with_index(claims_csv, tmp_path, mixed_folder):
    db = str(tmp_path / "reuse.sqlite")
    added = CliRunner().invoke(main, ["index", "add", "-q", str(mixed_folder / "real"), "--claim", "A", "--db", db])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["added"] == 2
    flipped = tmp_path / "flipped.png"
    query = CliRunner().invoke(main, ["index", "query", str(flipped), "--db", db])
    assert query.exit_code == 0, query.output
    match = json.loads(query.stdout.splitlines()[0])
    assert match["claim_id"] == "A" and "hflip" in match["transform"]
    scanned = CliRunner().invoke(main, ["scan", "-q", str(flipped), "--index", db])
    record = json.loads(scanned.stdout)
    assert "reuse.match" in {e["code"] for f in record["findings"] for e in f["evidence"]}
    copy = tmp_path / "copy.dcm"
    shutil.copyfile(mixed_folder / "real" / "ct.dcm", copy)
    duplicate = json.loads(CliRunner().invoke(main, ["scan", "-q", str(copy), "--index", db]).stdout)
    assert duplicate["level"] == "high"


def test_screen_runs_the_tamper_localizer_and_names_it(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "forensics"))
    from test_localization import _clone_stamped, _textured

    clean, stamped = _textured(seed=3), _clone_stamped(_textured(seed=3), 90, 150, 16, 60, -45)
    for name, img in (("clean.png", clean), ("edited.png", stamped)):
        cv2.imwrite(str(tmp_path / name), np.round(img * 255).astype(np.uint8))
    (tmp_path / "claims.csv").write_text("claim_id,path\nA,clean.png\nB,edited.png\n")
    out = tmp_path / "screen"
    result = CliRunner().invoke(main, ["screen", "-q", str(tmp_path / "claims.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # (the synthetic test texture itself looks generated to the pixel detectors; only the localizer is checked)
    found = {}
    for r in map(json.loads, (out / "images.jsonl").read_text().splitlines()):
        local = next(f for f in r["findings"] if f["analyzer"] == "localization")
        found[r["claim_id"]] = [e["code"] for e in local["evidence"] if e["weight"] > 0]
    assert found == {"A": [], "B": ["localization.copied_texture"]}
