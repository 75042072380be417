"""The bad-input corpus through `medaudit scan`: every broken input gives an error record with a clear code.

No crash, no hang (per-file --timeout, subprocess time limits), bounded memory (the zlib bomb under a 2 GiB
address-space limit), and every input appears exactly once in the output.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from corpus import build_corpus, png_zlib_bomb

from benchmarks.fuzz import medaudit_command

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_scan(args: list[str], timeout: float = 120, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([*medaudit_command(), "scan", *args], capture_output=True, timeout=timeout, env=ENV,
                          preexec_fn=preexec)


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "corpus"
    return root, build_corpus(root)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", [1, 2])
def test_corpus_scan_gives_a_clear_code_for_every_input(corpus, tmp_path, workers):
    root, cases = corpus
    out = tmp_path / "out.jsonl"
    proc = run_scan([str(root), "-o", str(out), "--timeout", "10", "--workers", str(workers), "-q"])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    records = read_jsonl(out)
    by_path = {}
    for r in records:
        assert r["path"] not in by_path, f"duplicate record for {r['path']}"
        by_path[r["path"]] = r
    assert not [r for r in records if r.get("error", {}).get("code") == "internal_error"]
    wrong = {}
    for case in cases:
        record = by_path.get(str(case.path))
        assert record is not None, f"{case.name}: no record for {case.path}"
        got = "ok" if record["status"] == "ok" else record["error"]["code"]
        if got not in case.codes:
            wrong[case.name] = (got, record.get("error", {}).get("message"), sorted(case.codes))
        if record["status"] == "error":
            assert record["error"]["message"], case.name
    assert not wrong, wrong
    # the walk found nothing we did not plan for, except what a folder walk adds (the loop's target folder)
    assert len(records) == len(cases)


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*medaudit_command(), *args], capture_output=True, timeout=timeout, env=ENV)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_corpus_index_add_files_or_records_every_input(corpus, tmp_path):
    """`index add` on the corpus folder (walked as scan walks it): each input filed or an error with a clear code."""
    root, cases = corpus
    proc = run_cli(["index", "add", str(root), "--claim", "X", "--db", str(tmp_path / "i.db"), "--timeout", "10",
                    "-q"])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    out = json.loads(proc.stdout)
    errors = {e["path"]: e["code"] for e in out["errors"]}
    wrong = {c.name: (errors.get(str(c.path), "ok"), sorted(c.filing())) for c in cases
             if errors.get(str(c.path), "ok") not in c.filing()}
    assert not wrong, wrong
    filed = sum(errors.get(str(c.path), "ok") == "ok" for c in cases)
    assert out["added"] + out["skipped_duplicates"] == filed and len(errors) == len(cases) - filed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_corpus_screen_gives_a_clear_code_for_every_row(corpus, tmp_path):
    """Every corpus file named in a claims CSV (one claim each): one record per row, filed or refused cleanly."""
    import csv as csv_mod

    root, cases = corpus
    claims = root / "claims.csv"
    with open(claims, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv_mod.writer(fh)
        writer.writerow(["claim_id", "path"])
        writer.writerows([c.name, os.path.relpath(c.path, root)] for c in cases)
    try:
        out = tmp_path / "screen"
        proc = run_cli(["screen", str(claims), "--out", str(out), "--timeout", "10", "-q"], timeout=580)
    finally:
        claims.unlink()
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    records = {r["claim_id"]: r for r in read_jsonl(out / "images.jsonl")}
    assert len(records) == len(cases)
    got = {c.name: "ok" if records[c.name]["status"] == "ok" else records[c.name]["error"]["code"] for c in cases}
    wrong = {c.name: (got[c.name], sorted(c.named())) for c in cases if got[c.name] not in c.named()}
    assert not wrong, wrong
    assert "internal_error" not in got.values()
    assert len((out / "claims.jsonl").read_text().splitlines()) == len(cases)


@pytest.mark.timeout(120, method="thread")  # catches a hang only (thread: the scan itself uses SIGALRM)
def test_per_file_timeout_turns_a_hang_into_a_record(tmp_path, monkeypatch):
    """A file that takes forever (a decoder stuck in Python code) ends as ``timeout``; the next file still runs."""
    import forensics.scanner as scanner_mod
    from cli import main

    slow, fine = tmp_path / "slow.png", tmp_path / "fine.png"
    from benchmarks.fuzz import seed_files

    slow.write_bytes(seed_files()["png_gray8"][0])
    fine.write_bytes(seed_files()["png_gray8"][0])
    real_load = scanner_mod.load

    def load(path, **kw):
        if str(path).endswith("slow.png"):
            while True:
                time.sleep(0.01)
        return real_load(path, **kw)

    monkeypatch.setattr(scanner_mod, "load", load)
    # metadata only: the good file must finish well inside the limit even on a loaded machine
    result = CliRunner().invoke(main, ["scan", str(slow), str(fine), "--timeout", "2", "--analyzers", "metadata", "-q"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    codes = {Path(r["path"]).name: (r["status"], r.get("error", {}).get("code")) for r in records}
    assert codes == {"slow.png": ("error", "timeout"), "fine.png": ("ok", None)}


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_timeout_caught_by_an_analyzer_still_ends_the_file(tmp_path, monkeypatch, workers):
    """Regression: the metadata analyzer wraps its parsers in ``except Exception``, which caught the per-file
    timeout and returned an "ok" finding after the deadline (an XMP ReDoS then scanned as ok/low, 60 s later)."""
    import forensics.analyzers.metadata as metadata_mod
    from benchmarks.fuzz import seed_files
    from forensics.scanner import ScanOptions, scan_paths

    def endless(data):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # one long computation, like a backtracking regex
            sum(range(1000))
        return []

    monkeypatch.setattr(metadata_mod, "png_evidence", endless)
    files = []
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(seed_files()["png_gray8"][0])
        files.append(str(tmp_path / name))
    results = list(scan_paths(files, ScanOptions(timeout_s=0.3), workers=workers))
    assert [(r.status, r.error.code if r.error else None) for r in results] == [("error", "timeout")] * 3
    assert all(r.findings == [] and r.risk is None for r in results)


def test_unreadable_file_and_folder(tmp_path, monkeypatch):
    """chmod 000 does not stop root, so the OS answer is simulated: EACCES on open() and on listing a folder."""
    import forensics.inputs as inputs_mod
    import forensics.io.guarded as guarded
    from cli import main

    secret = tmp_path / "secret.dcm"
    secret.write_bytes(b"\x00" * 200)
    secret.chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.png").write_bytes(b"x")
    locked.chmod(0)
    real_open, real_scandir = os.open, os.scandir

    def fake_open(path, *a, **kw):
        if str(path).endswith("secret.dcm"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    def fake_scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(guarded.os, "open", fake_open)
    monkeypatch.setattr(inputs_mod.os, "scandir", fake_scandir)
    try:
        result = CliRunner().invoke(main, ["scan", str(tmp_path), "-q"])
    finally:
        secret.chmod(0o644)
        locked.chmod(0o755)
    assert result.exit_code == 0, result.output
    records = {Path(r["path"]).name: r for r in map(json.loads, result.output.splitlines())}
    assert records["secret.dcm"]["error"]["code"] == "unreadable"
    assert "Permission denied" in records["secret.dcm"]["error"]["message"]
    assert records["locked"]["error"]["code"] == "unreadable"


def test_named_paths_that_are_not_files(tmp_path):
    """Paths given on the command line (not found in a walk): missing, link loops, a FIFO, a non-UTF-8 name."""
    from benchmarks.fuzz import seed_files
    from cli import main

    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    os.mkfifo(tmp_path / "fifo.png")
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.png")
    with open(raw, "wb") as fh:
        fh.write(seed_files()["png_gray8"][0])
    named = [str(tmp_path / "missing.png"), str(tmp_path / "a.png"), str(tmp_path / "fifo.png"), os.fsdecode(raw)]
    result = CliRunner().invoke(main, ["scan", *named, "--format", "csv", "-o", str(tmp_path / "out.csv"), "-q"])
    assert result.exit_code == 0, (result.output, result.exception)
    text = (tmp_path / "out.csv").read_bytes()
    assert b"\xff\xfe.png" in text  # the name's own bytes, not a replacement character
    rows = text.decode("utf-8", "surrogateescape").splitlines()[1:]
    codes = {os.path.basename(r.split(",")[0]): r.split(",")[7] for r in rows}
    assert codes == {"missing.png": "not_found", "a.png": "symlink_loop", "fifo.png": "not_a_file",
                     os.fsdecode(b"\xff\xfe.png"): ""}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.slow
@pytest.mark.timeout(120, method="thread")
def test_decompression_bombs_under_a_2_gib_address_space(tmp_path):
    """A 389 kB PNG inflating to 20000 x 20000 (400 MB of samples, 1.6 GB as float32), with the default guard and
    with --max-pixels raised above OpenCV's own guard: both end as too_many_pixels inside 2 GiB."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_zlib_bomb(20000))
    assert bomb.stat().st_size < 1_000_000
    for extra in ([], ["--max-pixels", str(10**9)]):
        out = tmp_path / "out.jsonl"
        proc = run_scan([str(bomb), "-o", str(out), "--timeout", "60", "-q", "--analyzers", "metadata", *extra],
                        timeout=90, preexec=_limit_memory)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
        (record,) = read_jsonl(out)
        assert record["status"] == "error" and record["error"]["code"] == "too_many_pixels", record


def test_corpus_builder_covers_the_issue_list(corpus):
    """The corpus has what the hardening issue asks for (guards against someone trimming it)."""
    _, cases = corpus
    names = {c.name for c in cases}
    assert sum(n.startswith("dicom_cut_") for n in names) >= 20
    for needed in ("dicom_wrong_vrs", "dicom_absurd_dimensions", "dicom_deep_sequences", "png_header_bomb",
                   "jpeg_zero_length_segment", "zero_bytes", "folder_named_png", "symlink_dir_loop",
                   "symlink_file_loop_a", "non_utf8_name", "fifo"):
        assert needed in names


if __name__ == "__main__":  # print the corpus table for docs/RELIABILITY.md
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cases = build_corpus(Path(tmp) / "corpus")
        out = Path(tmp) / "out.jsonl"
        proc = run_scan([str(Path(tmp) / "corpus"), "-o", str(out), "--timeout", "10", "-q"])
        got = {r["path"]: r for r in read_jsonl(out)}
        for c in cases:
            r = got[str(c.path)]
            code = "ok" if r["status"] == "ok" else r["error"]["code"]
            print(f"| {c.name} | {c.note} | `{code}` |")
    sys.exit(0)
