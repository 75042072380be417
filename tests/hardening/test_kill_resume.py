"""Nothing lost: `medaudit scan` killed with SIGKILL part-way and resumed; `medaudit audit` killed; dying workers.

The long version (50 kill points) is ``python -m benchmarks.fuzz --seconds 0 --kill-resume 50``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.fuzz import build_real_folder, kill_resume_once, medaudit_command, seed_files

ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("kr") / "inputs"
    build_real_folder(root, 150)
    return root


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kill_after", [5, 60, 130])
def test_scan_killed_and_resumed_loses_nothing(folder, tmp_path, kill_after):
    stats = kill_resume_once(folder, tmp_path / "out.jsonl", kill_after=kill_after, workers=2)
    assert stats["inputs"] == 150
    assert stats["lost"] == [] and stats["duplicated"] == [] and stats["unexpected"] == []
    assert stats["records"] == 150
    assert not stats["partial_left"]
    # at the moment of the kill the output was either absent (a .partial only) or whole, never both or torn
    assert not (stats["after_kill"]["final"] and stats["after_kill"]["partial"])
    assert stats["final_complete_after_kill"] in (None, True)
    if kill_after < 100:
        assert stats["killed_at"] is not None, "the run finished before it could be killed"


def test_resume_drops_a_cut_line_and_skips_whole_records(tmp_path):
    """The writer side alone: a .partial ending in half a JSON line is repaired and continued."""
    from forensics.scanner import ScanOptions, scan_paths
    from forensics.writers import ResultWriter

    files = []
    for i in range(4):
        p = tmp_path / f"in_{i}.png"
        p.write_bytes(seed_files()["png_gray8"][0])
        files.append(str(p))
    out = tmp_path / "out.jsonl"
    first = list(scan_paths(files[:2], ScanOptions()))
    partial = out.with_name("out.jsonl.partial")
    partial.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in first) + '{"path": "' + files[2][:10])
    writer = ResultWriter("jsonl", out, resume=True)
    assert writer.done >= {(None, files[0]), (None, files[1])} or writer.done >= {files[0], files[1]}
    for r in scan_paths(files, ScanOptions(), skip=writer.done):
        writer.write(r)
    writer.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in records) == sorted(files)
    assert not partial.exists()


class _Strict(HTMLParser):
    def __init__(self):
        super().__init__()
        self.closed_html = False

    def handle_endtag(self, tag):
        if tag == "html":
            self.closed_html = True


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_audit_killed_leaves_the_report_whole_or_absent(folder, tmp_path):
    small = tmp_path / "inputs"
    shutil.copytree(folder / "claim_00", small / "a")
    shutil.copytree(folder / "claim_01", small / "b")
    out = tmp_path / "report"
    cmd = [*medaudit_command(), "audit", str(small), "--out", str(out), "-q"]
    # a full run first, to know how long one takes and to have a previous report to protect
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, env=ENV)
    full = time.monotonic() - start
    previous = (out / "report.html").read_bytes()
    for fraction in (0.2, 0.5, 0.8, 0.95):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                                start_new_session=True)
        time.sleep(full * fraction)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        html = (out / "report.html").read_text(encoding="utf-8")
        parser = _Strict()
        parser.feed(html)
        assert parser.closed_html, f"report.html torn after a kill at {fraction:.0%}"
        json.loads((out / "report.json").read_text(encoding="utf-8"))
        assert (out / "report.csv").read_text(encoding="utf-8").endswith("\n")
    assert previous  # the old report was never replaced by a partial one (checked above on every kill)
    # a kill before the first report ever: no report.html at all, or a whole one
    fresh = tmp_path / "fresh"
    proc = subprocess.Popen([*medaudit_command(), "audit", str(small), "--out", str(fresh), "-q"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(full * 0.3)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if (fresh / "report.html").exists():
        parser = _Strict()
        parser.feed((fresh / "report.html").read_text(encoding="utf-8"))
        assert parser.closed_html


def _die_on(marker: str, how: str):
    import forensics.scanner as scanner_mod

    real = scanner_mod.Scanner.scan_file

    def scan_file(self, path, *args, **kwargs):
        if marker in os.path.basename(path):
            if how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, path, *args, **kwargs)

    return scan_file


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_dying_worker_does_not_hang_the_scan(tmp_path, monkeypatch, how):
    """A worker that dies (os._exit in an analyzer, SIGKILL from the OOM killer) costs its file, not the run."""
    import forensics.scanner as scanner_mod
    from forensics.scanner import WORKER_DIED, ScanOptions, scan_paths

    for i in range(40):
        (tmp_path / f"f_{i:03d}.png").write_bytes(seed_files()["png_gray8"][0])
    (tmp_path / "f_017_die.png").write_bytes(seed_files()["png_gray8"][0])
    monkeypatch.setattr(scanner_mod.Scanner, "scan_file", _die_on("_die", how))
    results = list(scan_paths([tmp_path], ScanOptions(), workers=2))
    names = [Path(r.path).name for r in results]
    assert sorted(names) == sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(names), "results come back in input order"
    bad = {Path(r.path).name: r.error.code for r in results if r.status != "ok"}
    assert bad == {"f_017_die.png": "internal_error"}
    assert next(r for r in results if r.status != "ok").error.message == WORKER_DIED


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_matches_names_that_spreadsheets_would_run(tmp_path, monkeypatch, fmt):
    """Regression: CSV cells starting with = + - @ TAB CR are quoted with a leading ' (CSV injection guard);
    resume must undo that for every one of them, or those files are scanned and written twice."""
    from click.testing import CliRunner

    from cli import main

    monkeypatch.chdir(tmp_path)
    names = ["=cmd.png", "+x.png", "-x.png", "@x.png", "\tx.png", "\rx.png", "plain.png", "new\nline.png"]
    for name in names:
        (tmp_path / name).write_bytes(seed_files()["png_gray8"][0])
    out = tmp_path / f"out.{fmt}"
    runner = CliRunner()
    first = runner.invoke(main, ["scan", "--format", fmt, "-o", str(out), "-q", "--", *names[:4]])
    assert first.exit_code == 0, first.output
    out.rename(out.with_name(out.name + ".partial"))  # as if killed after four records
    again = runner.invoke(main, ["scan", "--format", fmt, "-o", str(out), "--resume", "-q", "--", *names])
    assert again.exit_code == 0, again.output
    if fmt == "jsonl":
        paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    else:
        import csv

        with open(out, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))[1:]
        paths = [r[0][1:] if r[0][:1] == "'" else r[0] for r in rows]
    assert sorted(paths) == sorted(names)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_screen_killed_and_resumed_matches_an_uninterrupted_run(tmp_path):
    """`medaudit screen` (images filed in the reuse index first): after kill -9 and --resume every (claim, image)
    has one record and the claim summaries, reuse hits included, equal those of a run never interrupted."""
    from benchmarks.fuzz import _summaries, build_claims, kill_resume_screen_once

    claims_csv = build_claims(tmp_path / "in", n=60, claims=20)
    subprocess.run([*medaudit_command(), "screen", str(claims_csv), "--out", str(tmp_path / "ref"), "-q"],
                   check=True, capture_output=True, timeout=120, env=ENV)
    reference = _summaries(tmp_path / "ref")
    stats = kill_resume_screen_once(claims_csv, tmp_path / "out", kill_after=25)
    assert stats["killed_at"] is not None
    assert stats["lost"] == [] and stats["duplicated"] == [] and not stats["partial_left"]
    assert stats["claims"] == reference
