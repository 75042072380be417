"""Nothing lost, nothing left running: `medaudit scan`, `screen` and `audit` killed with SIGKILL part-way (the
whole process group, or the main process alone) and resumed; dying workers.

The long version is ``python -m benchmarks.fuzz --seconds 0 --kill-resume 20 --kill-resume-screen 20
--kill-audit 20``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.fuzz import (
    KILLS,
    build_real_folder,
    kill_audit_once,
    kill_resume_once,
    medaudit_command,
    run_processes,
    seed_files,
)

ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("kr") / "inputs"
    build_real_folder(root, 150)
    return root


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(("kill_after", "target"), [(5, "main"), (60, "group"), (130, "main")])
def test_scan_killed_and_resumed_loses_nothing(folder, tmp_path, kill_after, target):
    stats = kill_resume_once(folder, tmp_path / "out.jsonl", kill_after=kill_after, workers=2, target=target)
    assert stats["inputs"] == 150
    assert stats["lost"] == [] and stats["duplicated"] == [] and stats["unexpected"] == []
    assert stats["survivors"] == 0, "a process of the killed run was still alive"
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
@pytest.mark.parametrize("target", KILLS)
def test_screen_killed_and_resumed_matches_an_uninterrupted_run(tmp_path, target):
    """`medaudit screen` (images filed in the reuse index first): after kill -9 and --resume every (claim, image)
    has one record and the claim summaries, reuse hits included, equal those of a run never interrupted."""
    from benchmarks.fuzz import _summaries, build_claims, kill_resume_screen_once

    claims_csv = build_claims(tmp_path / "in", n=60, claims=20)
    subprocess.run([*medaudit_command(), "screen", str(claims_csv), "--out", str(tmp_path / "ref"), "-q"],
                   check=True, capture_output=True, timeout=120, env=ENV)
    reference = _summaries(tmp_path / "ref")
    stats = kill_resume_screen_once(claims_csv, tmp_path / "out", kill_after=25, target=target,
                                    reference=tmp_path / "ref")
    assert stats["killed_at"] is not None
    assert stats["lost"] == [] and stats["duplicated"] == [] and not stats["partial_left"]
    assert stats["claims"] == reference
    assert stats["survivors"] == 0 and stats["differ"] == 0


def _start_and_wait_for_workers(cmd: list[str], n: int) -> subprocess.Popen:
    """Start ``cmd`` in a new process group and return once ``n`` processes besides the main one run in it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    while len(run_processes(proc.pid) - {proc.pid}) < n:
        assert proc.poll() is None, "the run ended before its workers started"
        time.sleep(0.02)
    return proc


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", ["scan", "audit", "screen", "scan --engine dask"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_main_process_alone_is_killed(folder, tmp_path, command, sig):
    """Issue 15 row 2: `kill -9` (or TERM) of the main `-j 2` process only used to orphan both workers (PPID 1,
    ~800 MB each, alive 200 s later). Every process of the run must end with it, whatever signal it got; the
    dask engine's LocalCluster workers included (distributed's own processes watch their parent)."""
    from benchmarks.fuzz import build_claims, survivors_of

    if "dask" in command:
        pytest.importorskip("dask.distributed")
    if command == "screen":
        target = [str(build_claims(tmp_path / "claims", n=400, claims=40))]
    else:
        target = [str(folder)]
    out = ["-o", str(tmp_path / "out.jsonl")] if command.startswith("scan") else ["--out", str(tmp_path / "out")]
    proc = _start_and_wait_for_workers([*medaudit_command(), *command.split(), *target, *out, "-j", "2", "-q"],
                                       n=2)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    assert survivors_of(proc.pid) == 0, f"workers of `{command}` outlived the main process killed by {sig.name}"


def test_die_with_parent_ends_a_process_whose_parent_is_gone():
    """The watchdog half (the only one off Linux): a process told to die with a parent that is already gone
    exits at once instead of running on."""
    code = ("import os, sys, time; from forensics.scanner import die_with_parent; "
            "die_with_parent(int(sys.argv[1])); time.sleep(60); sys.exit(0)")
    dead = subprocess.Popen(["true"])
    dead.wait()
    done = subprocess.run([sys.executable, "-c", code, str(dead.pid)], timeout=30, env=ENV)
    assert done.returncode == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", KILLS)
def test_audit_killed_then_rerun_matches_a_clean_run(folder, tmp_path, target):
    small = tmp_path / "inputs"
    shutil.copytree(folder / "claim_00", small / "a")
    reference = tmp_path / "ref"
    start = time.monotonic()
    subprocess.run([*medaudit_command(), "audit", str(small), "--out", str(reference), "-j", "2", "-q"],
                   check=True, capture_output=True, timeout=120, env=ENV)
    full = time.monotonic() - start
    stats = kill_audit_once(small, tmp_path / "out", delay=full * 0.6, target=target, reference=reference)
    assert stats == {**stats, "survivors": 0, "torn": False, "differ": 0}
