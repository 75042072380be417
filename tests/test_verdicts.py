"""Verdicts an examiner can trust: coverage is part of the verdict (``unscored``), scores explained in log-odds,
inputs that cannot be screened are loud. End to end through click's CliRunner on real files."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from cli import main

# the pixel analyzer without torch: these tests are about what the verdict says, not about the CNN
FAST = ["--analyzers", "frequency,metadata,watermark"]


def _records(text: str) -> dict[str, dict]:
    return {os.path.basename(r["path"]): r for r in map(json.loads, text.splitlines())}


@pytest.fixture
def real_folder(tmp_path, mixed_folder):
    """pydicom's CT (a modality the pixel analyzers cover) and an ultrasound (one they do not)."""
    import pydicom.examples

    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copyfile(mixed_folder / "real" / "ct.dcm", folder / "ct.dcm")
    shutil.copyfile(pydicom.examples.get_path("rgb_color"), folder / "us.dcm")
    return folder


# ------------------------------------------------------------------------------------------------ coverage


def test_an_image_no_pixel_analyzer_covers_is_unscored_not_low(real_folder):
    result = CliRunner().invoke(main, ["scan", str(real_folder), *FAST])
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    us, ct = records["us.dcm"], records["ct.dcm"]
    assert us["level"] == "unscored" and us["risk"] is None and us["assessed_by"] == []
    assert ct["level"] == "low" and ct["assessed_by"] == ["frequency"]
    assert "1 low, 0 medium, 0 high, 1 unscored, 0 error" in result.stderr


def test_fail_on_unscored_exits_1_and_fail_on_alone_ignores_unscored(real_folder):
    us = str(real_folder / "us.dcm")
    assert CliRunner().invoke(main, ["scan", "-q", us, "--fail-on", "low", *FAST]).exit_code == 0
    assert CliRunner().invoke(main, ["scan", "-q", us, "--fail-on-unscored", *FAST]).exit_code == 1
    ct = str(real_folder / "ct.dcm")
    assert CliRunner().invoke(main, ["scan", "-q", ct, "--fail-on-unscored", *FAST]).exit_code == 0


def test_without_pixel_analyzers_nothing_reads_as_low(real_folder):
    result = CliRunner().invoke(main, ["scan", "-q", str(real_folder), "--analyzers", "metadata,watermark"])
    levels = {name: r["level"] for name, r in _records(result.stdout).items()}
    assert levels == {"ct.dcm": "unscored", "us.dcm": "unscored"}


def test_resume_of_a_jsonl_written_before_the_coverage_fields(real_folder, tmp_path):
    out = tmp_path / "scan.jsonl"
    old = {"path": str(real_folder / "ct.dcm"), "sha256": "0" * 64, "status": "ok", "risk": 0.01, "level": "low",
           "format": "dicom", "modality": "CT", "elapsed_ms": 1.0,
           "findings": [{"analyzer": "cnn", "score": 0.01, "evidence": [{"code": "cnn.score", "message": "m",
                                                                          "weight": 0.01}]}]}
    (tmp_path / "scan.jsonl.partial").write_text(json.dumps(old) + "\n")
    result = CliRunner().invoke(main, ["scan", "-q", str(real_folder), "-o", str(out), "--resume", *FAST])
    assert result.exit_code == 0, result.output
    records = _records(out.read_text())
    assert "assessed_by" not in records["ct.dcm"] and records["us.dcm"]["level"] == "unscored"
    table = CliRunner().invoke(main, ["scan", "-q", str(real_folder), "--format", "table", *FAST])
    assert table.exit_code == 0 and "unscored" in table.stdout


def test_audit_counts_unscored_apart_in_every_summary(real_folder, tmp_path):
    out = tmp_path / "audit"
    result = CliRunner().invoke(main, ["audit", "-q", str(real_folder), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "1 unscored" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["unscored"] == 1 and report["summary"]["low"] == 1
    rows = {os.path.basename(r["path"]): r for r in csv.DictReader((out / "report.csv").open())}
    assert rows["us.dcm"]["level"] == "unscored" and rows["us.dcm"]["risk"] == ""
    assert rows["us.dcm"]["assessed_by"] == "" and rows["ct.dcm"]["assessed_by"] == "frequency"
    html = (out / "report.html").read_text()
    assert '<div class="card lvl-unscored">' in html and '<span class="badge lvl-unscored">unscored</span>' in html


# ------------------------------------------------------------------------------------------------ explained scores


def test_each_finding_records_its_log_odds_and_they_add_up(real_folder):
    result = CliRunner().invoke(main, ["scan", "-q", str(real_folder / "ct.dcm"), "--analyzers",
                                       "cnn,frequency,metadata,watermark"])
    assert result.exit_code == 0, result.output
    (record,) = _records(result.stdout).values()
    total = record["prior_logit"] + sum(f["contribution"] for f in record["findings"])
    assert total == pytest.approx(record["logit"], abs=1e-3)
    assert 1 / (1 + math.exp(-record["logit"])) == pytest.approx(record["risk"], abs=1e-4)
    # the CNN's heatmap is on its score's scale: its cells' log-odds average is the score
    cnn = next(f for f in record["findings"] if f["analyzer"] == "cnn")
    heat = [min(max(v, 1e-6), 1 - 1e-6) for row in cnn["heatmap"] for v in row]
    mean_logit = sum(math.log(v / (1 - v)) for v in heat) / len(heat)
    assert 1 / (1 + math.exp(-mean_logit)) == pytest.approx(cnn["score"], abs=2e-3)
    assert max(heat) < 0.5 or cnn["score"] >= 0.05  # no red cell beside a 0.00 score
    # the top reason (table and CSV) is the finding that raised the risk most, never a score of 0.00
    top = max(record["findings"], key=lambda f: f["contribution"])
    table = CliRunner().invoke(main, ["scan", "-q", str(real_folder / "ct.dcm"), "--format", "table",
                                      "--analyzers", "cnn,frequency,metadata,watermark"])
    codes = {e["code"] for e in top["evidence"]}
    assert top["contribution"] > 0 and any(code in table.stdout for code in codes)
    assert "cnn.score" not in table.stdout


CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (/usr/bin/chromium or on PATH)")
def test_report_draws_the_waterfall_to_the_risk_and_greys_unscored(real_folder, tmp_path):
    out = tmp_path / "audit"
    assert CliRunner().invoke(main, ["audit", "-q", str(real_folder), "--out", str(out), *FAST]).exit_code == 0
    ct = next(r for r in json.loads((out / "report.json").read_text())["results"] if r["path"].endswith("ct.dcm"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "report.html").resolve().as_uri()]
    dom = subprocess.run([CHROMIUM, *flags], capture_output=True, text=True, timeout=60, check=False).stdout
    assert re.search(r'<body[^>]*data-ready="1"', dom)
    item = dom[dom.index('data-path="' + ct["path"]):]
    item = item[: item.index("</tbody>")]
    rows = re.findall(r'<div class="wf-row wf-(\w+)">.*?style="left: ([\d.]+)%; width: ([\d.]+)%".*?'
                      r'<span class="wf-val">([^<]*)</span>', item)
    moved = [f for f in ct["findings"] if f.get("contribution")]
    assert [kind for kind, *_ in rows] == ["prior", *("up" if f["contribution"] > 0 else "down" for f in
                                                      sorted(moved, key=lambda f: -abs(f["contribution"]))), "total"]
    assert rows[-1][3].strip().endswith(f"{ct['risk']:.4f}")  # the last bar ends at the record's risk
    left = float(rows[-1][1])
    assert left == pytest.approx((max(-10, min(10, ct["logit"])) + 10) * 5, abs=0.05)
    assert '<span class="badge lvl-unscored">unscored</span>' in dom and "Not scored: no pixel analyzer" in dom


# ------------------------------------------------------------------------------------------------ loud inputs


@pytest.mark.parametrize("command", ["scan", "audit"])
def test_nothing_to_scan_exits_2_with_the_reason(command, tmp_path):
    (tmp_path / "empty").mkdir()
    extra = ["--out", str(tmp_path / "out")] if command == "audit" else []
    for given, why in [(tmp_path / "empty", "folder holds no files"), (tmp_path / "no_such_dir", "no such file")]:
        result = CliRunner().invoke(main, [command, "-q", str(given), *extra, *FAST])
        assert result.exit_code == 2 and "nothing to scan" in result.stderr and why in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "out").exists()  # no empty report that looks like a clean batch


def test_a_missing_path_beside_real_files_is_still_an_error_record(real_folder, tmp_path):
    result = CliRunner().invoke(main, ["scan", "-q", str(real_folder / "ct.dcm"), str(tmp_path / "gone.png"), *FAST])
    assert result.exit_code == 0
    assert _records(result.stdout)["gone.png"]["error"]["code"] == "not_found"


def test_screen_with_a_header_only_csv_exits_2(tmp_path):
    csv_path = tmp_path / "claims.csv"
    csv_path.write_text("claim_id,path\n")
    result = CliRunner().invoke(main, ["screen", "-q", str(csv_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no claim rows" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_claim_with_a_missing_image_is_incomplete_and_fails_any_fail_on(real_folder, tmp_path):
    csv_path = tmp_path / "claims.csv"
    csv_path.write_text(f"claim_id,path\nA,{real_folder / 'ct.dcm'}\nA,gone.png\nB,{real_folder / 'ct.dcm'}\n"
                        f"C,{real_folder / 'us.dcm'}\n")
    args = ["screen", str(csv_path), "--out", str(tmp_path / "out"), *FAST]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    claims = {c["claim_id"]: c for c in map(json.loads, (tmp_path / "out" / "claims.jsonl").read_text().splitlines())}
    assert claims["A"]["level"] == "incomplete" and claims["A"]["errors"] == 1
    assert claims["B"]["level"] == "low" and claims["C"]["level"] == "unscored" and claims["C"]["unscored"] == 1
    assert "claims 3: 1 low, 0 medium, 0 high, 1 unscored, 1 incomplete" in result.stderr
    assert CliRunner().invoke(main, [*args, "-q", "--fail-on", "high"]).exit_code == 1  # incomplete: could be anything
    assert CliRunner().invoke(main, [*args, "-q", "--fail-on-unscored"]).exit_code == 1
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<title>medaudit screening report</title>" in html and '<td class="claim-id"><code>A</code></td>' in html


# ------------------------------------------------------------------------------------------------ smaller items


def test_table_has_a_header_and_is_sorted_by_risk(mixed_folder):
    result = CliRunner().invoke(main, ["scan", "-q", str(mixed_folder), "--format", "table", *FAST])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["LEVEL", "RISK"] and header.rstrip().endswith("PATH")
    levels = [row.split()[0] for row in rows]
    risks = [float(row.split()[1]) for row in rows if row.split()[1] != "—"]
    assert len(rows) == 7 and risks == sorted(risks, reverse=True) and levels[0] == "high"
    assert levels[-3:] == ["error"] * 3 and "unscored" in levels  # no risk: after every scored image


def _grey_png(path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), (rng.random((96, 96)) * 120 + 60).astype(np.uint8))
    return path


def test_tamper_refuses_text_and_colour_images_clearly(tmp_path):
    import cv2
    import numpy as np

    (tmp_path / "notes.txt").write_text("not an image\n")
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 120, 90  # skin-like colour: a dermoscopy photograph
    cv2.imwrite(str(tmp_path / "derm.jpg"), rgb)
    for name, says in [("notes.txt", "unsupported_format"), ("derm.jpg", "colour image")]:
        result = CliRunner().invoke(main, ["tamper", "inject", str(tmp_path / name), "--at", "40,40", "--out",
                                           str(tmp_path / "out.png")])
        assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_generate_and_tamper_outputs_follow_the_umask(tmp_path):
    import stat
    import subprocess
    import sys

    run = [sys.executable, "-c", "import cli; cli.main()"]
    src = _grey_png(tmp_path / "ct.png")
    for args in (["tamper", "inject", str(src), "--at", "40,40", "--out", str(tmp_path / "t" / "out.png")],
                 ["generate", "cxr_vae", "-n", "1", "--out", str(tmp_path / "g"), "-q"]):
        done = subprocess.run([*run, *args], capture_output=True, text=True, timeout=300, check=False,
                              cwd=os.path.dirname(os.path.dirname(__file__)), preexec_fn=lambda: os.umask(0o027))
        assert done.returncode == 0, done.stderr
    written = [*(tmp_path / "t").iterdir(), *(tmp_path / "g").iterdir()]
    # generated image and labels, tampered image and its mask
    assert len(written) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o640}


def test_every_command_takes_quiet():
    import click

    def leaves(group, prefix=""):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from leaves(cmd, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", cmd

    missing = [name for name, cmd in leaves(main) if not any(p.name == "quiet" for p in cmd.params)]
    assert missing == []
    assert CliRunner().invoke(main, ["index", "query", "-q", "--help"]).exit_code == 0


def test_index_query_without_a_match_says_so_on_stderr(tmp_path):
    import cv2
    import numpy as np

    db = tmp_path / "reuse.sqlite"
    filed = _grey_png(tmp_path / "filed.png")
    other = tmp_path / "other.png"
    yy, xx = np.mgrid[0:96, 0:96]
    cv2.imwrite(str(other), ((np.sin(xx / 5.0) * np.cos(yy / 9.0) + 1) * 120).astype(np.uint8))
    assert CliRunner().invoke(main, ["index", "add", "-q", str(filed), "--claim", "A", "--db", str(db)]).exit_code == 0
    result = CliRunner().invoke(main, ["index", "query", str(other), "--db", str(db)])
    assert result.exit_code == 0 and result.stdout == "" and "no match for" in result.stderr
    found = CliRunner().invoke(main, ["index", "query", str(filed), "--db", str(db)])
    assert found.exit_code == 0 and json.loads(found.stdout.splitlines()[0])["claim_id"] == "A"
