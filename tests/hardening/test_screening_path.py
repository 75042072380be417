"""The screening path (`screen`, `index add`, the reuse index) keeps scan's promises (issue 15, rows 1, 3-7, 9, 10,
13): one bad file is an error record and the batch goes on; files are read through the one guarded reader (regular
files, --max-bytes, the per-file time limit); CSV paths stay under a root; output sets are replaced whole."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main


def _png(path: Path, shape=(64, 64), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), (rng.random(shape) * 255).astype(np.uint8))
    return path


def _index_add(*args) -> dict:
    result = CliRunner().invoke(main, ["index", "add", "-q", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def _screen(csv: Path, out: Path, *extra: str, analyzers: str = "metadata,reuse"):
    args = ["screen", "-q", str(csv), "--out", str(out), *extra] + (["--analyzers", analyzers] if analyzers else [])
    return CliRunner().invoke(main, args)


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("claim_id,path\n" + "".join(r + "\n" for r in rows))
    return path


def _images(out: Path) -> dict[tuple[str, str], dict]:
    records = [json.loads(x) for x in (out / "images.jsonl").read_text().splitlines()]
    keys = [(r["claim_id"], os.path.basename(r["path"])) for r in records]
    assert len(set(keys)) == len(keys), keys
    return dict(zip(keys, records, strict=True))


def _code(record: dict) -> str:
    return "ok" if record["status"] == "ok" else record["error"]["code"]


def _filed(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return sorted((c, os.path.basename(p)) for c, p in conn.execute("SELECT claim_id, path FROM images"))


# --- row 1: images one pixel thin ---------------------------------------------------------------------------------

THIN = ((1, 1), (1, 64), (64, 1))


def test_index_add_records_thin_pngs_and_goes_on(tmp_path):
    thin = [_png(tmp_path / f"t{h}x{w}.png", (h, w)) for h, w in THIN]
    good = [_png(tmp_path / "good.png"), _png(tmp_path / "two_rows.png", (2, 64), seed=1)]
    out = _index_add(*thin, *good, "--claim", "A", "--db", tmp_path / "i.db")
    assert out["added"] == 2
    assert {Path(e["path"]).name: e["code"] for e in out["errors"]} == {p.name: "too_small" for p in thin}


@pytest.mark.slow
def test_screen_with_thin_pngs_writes_every_record(tmp_path):
    """Every analyzer (the default set): the thin images are scanned, not filed; nothing ends the run."""
    for h, w in THIN:
        _png(tmp_path / f"t{h}x{w}.png", (h, w))
    _png(tmp_path / "good.png")
    csv = _csv(tmp_path / "claims.csv", [f"C{i},t{h}x{w}.png" for i, (h, w) in enumerate(THIN)] + ["G,good.png"])
    result = _screen(csv, tmp_path / "out", analyzers="")
    assert result.exit_code == 0, (result.output, result.exception)
    images = _images(tmp_path / "out")
    assert len(images) == 4 and all(_code(r) == "ok" for r in images.values())
    assert _filed(tmp_path / "out" / "reuse.sqlite") == [("G", "good.png")]
    assert len((tmp_path / "out" / "claims.jsonl").read_text().splitlines()) == 4


# --- row 3: many processes creating one new index -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300, method="thread")
def test_eight_processes_create_and_fill_one_new_index():
    from benchmarks.fuzz import concurrent_index

    # the race lost 48 of 100 direct opens before: three fresh databases, eight processes opening each at once
    totals = concurrent_index(3, processes=8, per_process=2)
    assert totals == {"trials": 3, "processes": 8, "exceptions": 0, "errors": 0, "misfiled": 0, "corrupt": 0}


def test_creating_an_index_retries_while_another_process_holds_the_lock(tmp_path, monkeypatch):
    """What the race looks like from one process: switching a new database to WAL answers "database is locked"
    at once (SQLite runs no busy handler there) while another process creates it; creation is retried."""
    from forensics.reuse.index import ReuseIndex

    real, failures = ReuseIndex._create, []

    def create(self):
        if len(failures) < 3:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        real(self)

    monkeypatch.setattr(ReuseIndex, "_create", create)
    with ReuseIndex(tmp_path / "new.db") as index:
        assert len(index) == 0 and len(failures) == 3

    def broken(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ReuseIndex, "_create", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):  # other errors are not retried
        ReuseIndex(tmp_path / "other.db")


# --- row 4: a file that blocks on read ----------------------------------------------------------------------------


@pytest.mark.timeout(120, method="thread")
def test_a_blocking_read_times_out_in_index_add(tmp_path, monkeypatch):
    """A regular file whose read never returns (as /proc/kmsg): simulated by a read that blocks."""
    import time

    import forensics.io.guarded as guarded

    stuck, good = _png(tmp_path / "stuck.png"), _png(tmp_path / "good.png", seed=1)
    real_read = guarded.os.read
    stuck_fd = []

    def read(fd, n):
        if os.path.samefile(f"/proc/self/fd/{fd}", stuck):
            stuck_fd.append(fd)
            while True:
                time.sleep(0.01)
        return real_read(fd, n)

    monkeypatch.setattr(guarded.os, "read", read)
    out = _index_add(stuck, good, "--claim", "A", "--db", tmp_path / "i.db", "--timeout", "1")
    assert stuck_fd and out["added"] == 1
    assert [(Path(e["path"]).name, e["code"]) for e in out["errors"]] == [("stuck.png", "timeout")]


@pytest.mark.timeout(120, method="thread")
@pytest.mark.skipif(not os.access("/proc/kmsg", os.R_OK), reason="needs read access to /proc/kmsg (root)")
def test_proc_kmsg_in_a_claims_csv_times_out(tmp_path):
    _png(tmp_path / "good.png")
    csv = _csv(tmp_path / "claims.csv", ["K,/proc/kmsg", "G,good.png"])
    result = _screen(csv, tmp_path / "out", "--allow-outside", "--timeout", "1", analyzers="metadata")
    assert result.exit_code == 0, (result.output, result.exception)
    images = _images(tmp_path / "out")
    assert _code(images[("K", "kmsg")]) == "timeout" and _code(images[("G", "good.png")]) == "ok"


# --- row 5: a file-size cap checked before reading ----------------------------------------------------------------


def test_a_3_gb_sparse_file_is_too_large_before_it_is_read(tmp_path):
    sparse = tmp_path / "sparse.png"
    with open(sparse, "wb") as fh:
        fh.truncate(3 << 30)
    good = _png(tmp_path / "good.png")
    out = _index_add(sparse, good, "--claim", "A", "--db", tmp_path / "i.db")
    assert out["added"] == 1 and [e["code"] for e in out["errors"]] == ["too_large"]
    csv = _csv(tmp_path / "claims.csv", ["S,sparse.png", "G,good.png"])
    assert _screen(csv, tmp_path / "out").exit_code == 0
    assert _code(_images(tmp_path / "out")[("S", "sparse.png")]) == "too_large"
    scan = CliRunner().invoke(main, ["scan", "-q", str(sparse), "--analyzers", "metadata"])
    assert json.loads(scan.output)["error"]["code"] == "too_large"


def test_max_bytes_applies_to_scan_audit_screen_and_index_add(tmp_path):
    good = _png(tmp_path / "good.png")
    cap = ["--max-bytes", str(good.stat().st_size - 1)]
    assert _index_add(good, "--claim", "A", "--db", tmp_path / "i.db", *cap)["errors"][0]["code"] == "too_large"
    scan = CliRunner().invoke(main, ["scan", "-q", str(good), "--analyzers", "metadata", *cap])
    assert json.loads(scan.output)["error"]["code"] == "too_large"
    audit = CliRunner().invoke(main, ["audit", "-q", str(good), "--out", str(tmp_path / "a"), "--analyzers",
                                      "metadata", *cap])
    assert audit.exit_code == 0 and "too_large" in (tmp_path / "a" / "report.csv").read_text()
    assert _screen(_csv(tmp_path / "c.csv", ["A,good.png"]), tmp_path / "s", *cap).exit_code == 0
    assert _code(_images(tmp_path / "s")[("A", "good.png")]) == "too_large"


# --- row 6: a folder in a claims CSV ------------------------------------------------------------------------------


def test_a_folder_in_a_claims_csv_is_not_a_file_for_both_steps(tmp_path):
    """The issue's row: `C_dir,../imgs` (a folder one level up, under --root), beside a claim with one of its
    images. Indexing must not walk the folder, so the other claim is not flagged as a copy of C_dir's files."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        _png(imgs / f"{i}.png", seed=i)
    (tmp_path / "claims").mkdir()
    csv = _csv(tmp_path / "claims" / "claims.csv", ["C_dir,../imgs", "B,../imgs/0.png"])
    result = _screen(csv, tmp_path / "out", "--root", str(tmp_path))
    assert result.exit_code == 0, (result.output, result.exception)
    images = _images(tmp_path / "out")
    assert _code(images[("C_dir", "imgs")]) == "not_a_file"
    assert images[("B", "0.png")]["level"] == "unscored"  # metadata,reuse only: no pixel analyzer assessed it
    assert _filed(tmp_path / "out" / "reuse.sqlite") == [("B", "0.png")]


# --- row 7: paths confined to a root ------------------------------------------------------------------------------


def test_claims_csv_paths_outside_the_root_are_refused_without_a_look(tmp_path):
    (tmp_path / "batch").mkdir()
    secret = _png(tmp_path / "secret.png", seed=3)
    _png(tmp_path / "batch" / "good.png")
    rows = ["P,../../../../../../etc/passwd", f"A,{secret}", "M,../missing.png", "G,good.png"]
    csv = _csv(tmp_path / "batch" / "claims.csv", rows)
    assert _screen(csv, tmp_path / "out").exit_code == 0
    images = _images(tmp_path / "out")
    refused = [images[k] for k in (("P", "passwd"), ("A", "secret.png"), ("M", "missing.png"))]
    assert {_code(r) for r in refused} == {"outside_root"}
    assert len({r["error"]["message"] for r in refused}) == 1  # existing or not: the same answer
    assert _code(images[("G", "good.png")]) == "ok"
    assert _filed(tmp_path / "out" / "reuse.sqlite") == [("G", "good.png")]
    assert "root:" not in (tmp_path / "out" / "report.html").read_text()  # nothing of /etc/passwd was read

    assert _screen(csv, tmp_path / "out2", "--allow-outside").exit_code == 0
    images = _images(tmp_path / "out2")
    assert _code(images[("P", "passwd")]) == "unsupported_format" and _code(images[("A", "secret.png")]) == "ok"
    assert _code(images[("M", "missing.png")]) == "not_found"


# --- row 9: a duplicated row, killed and resumed ------------------------------------------------------------------


def test_a_duplicated_row_resumed_gives_the_clean_result(tmp_path):
    for name in ("x.png", "y.png"):
        _png(tmp_path / name, seed=len(name) + ord(name[0]))
    csv = _csv(tmp_path / "claims.csv", ["A,x.png", "A,x.png", "A,y.png"])
    clean = tmp_path / "clean"
    assert _screen(csv, clean).exit_code == 0
    # the kill: the run had recorded the first row when it died
    killed = tmp_path / "killed"
    killed.mkdir()
    first = (clean / "images.jsonl").read_text().splitlines()[0]
    (killed / "images.jsonl.partial").write_text(first + "\n")
    assert _screen(csv, killed, "--resume").exit_code == 0

    def claims(out):
        return [{k: c[k] for k in ("claim_id", "images", "errors", "max_risk", "level")}
                for c in map(json.loads, (out / "claims.jsonl").read_text().splitlines())]

    assert claims(killed) == claims(clean) == [
        {"claim_id": "A", "images": 2, "errors": 0, "max_risk": None, "level": "unscored"}]  # no pixel analyzer ran
    assert _images(killed).keys() == _images(clean).keys()


# --- resume re-reads nothing already filed --------------------------------------------------------------------------


def test_resumed_screen_does_not_read_filed_images_again(tmp_path, monkeypatch):
    import forensics.reuse as reuse

    for i in range(3):
        _png(tmp_path / f"{i}.png", seed=i)
    csv = _csv(tmp_path / "claims.csv", [f"C{i},{i}.png" for i in range(3)])
    assert _screen(csv, tmp_path / "out").exit_code == 0
    read = []
    real = reuse.prepare
    monkeypatch.setattr(reuse, "prepare", lambda item, **kw: read.append(item) or real(item, **kw))
    assert _screen(csv, tmp_path / "out", "--resume").exit_code == 0
    assert read == []
    assert len(_images(tmp_path / "out")) == 3


# --- row 10: output sets replaced whole ---------------------------------------------------------------------------


def _disk_full_on(monkeypatch, name: str):
    """Writing the temp file of ``name`` fails with ENOSPC, as on a full disk."""
    import forensics.atomic as atomic

    real = atomic._write_synced

    def write(tmp, data):
        if f".{name}." in tmp.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tmp, data)

    monkeypatch.setattr(atomic, "_write_synced", write)


def test_audit_on_a_full_disk_leaves_the_old_report_set_whole(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "report"
    args = ["audit", "-q", str(tmp_path / "in"), "--out", str(out), "--analyzers", "metadata"]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _png(tmp_path / "in" / "b.png", seed=1)
    _disk_full_on(monkeypatch, "report.csv")
    assert CliRunner().invoke(main, args).exit_code != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new json beside the old html and csv


def test_screen_on_a_full_disk_leaves_the_old_set_and_resumes(tmp_path, monkeypatch):
    _png(tmp_path / "a.png")
    csv = _csv(tmp_path / "claims.csv", ["A,a.png"])
    out = tmp_path / "out"
    assert _screen(csv, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "reuse.sqlite"}
    _png(tmp_path / "b.png", seed=1)
    csv = _csv(tmp_path / "claims.csv", ["A,a.png", "B,b.png"])
    with monkeypatch.context() as m:
        _disk_full_on(m, "claims.jsonl")
        assert _screen(csv, out, "--resume").exit_code != 0
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name not in ("reuse.sqlite", "images.jsonl.partial")}
    assert after == before and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert _screen(csv, out, "--resume").exit_code == 0
    assert set(_images(out)) == {("A", "a.png"), ("B", "b.png")}
    assert not (out / "images.jsonl.partial").exists()


def test_a_failed_resume_of_a_finished_file_keeps_the_file(tmp_path, monkeypatch):
    import forensics.scanner as scanner_mod

    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out.jsonl"
    args = ["scan", "-q", str(tmp_path / "in"), "-o", str(out), "--analyzers", "metadata"]
    assert CliRunner().invoke(main, args).exit_code == 0
    finished = out.read_bytes()
    _png(tmp_path / "in" / "b.png", seed=1)

    def interrupted(self, path, *a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(scanner_mod.Scanner, "scan_file", interrupted)
    assert CliRunner().invoke(main, [*args, "--resume"]).exit_code == 130
    assert out.read_bytes() == finished


# --- row 13 -------------------------------------------------------------------------------------------------------


def test_screen_report_csv_has_a_claim_id_column(tmp_path):
    _png(tmp_path / "a.png")
    assert _screen(_csv(tmp_path / "claims.csv", ["A-17,a.png"]), tmp_path / "out").exit_code == 0
    header, row = (tmp_path / "out" / "report.csv").read_text().splitlines()[:2]
    assert header.startswith("claim_id,path,") and row.startswith("A-17,")


def test_the_dask_engine_reads_through_the_guarded_reader(tmp_path):
    """The dask client reads files for its workers: the same codes as the local engine, before any bytes ship."""
    from forensics.distributed import _read
    from forensics.scanner import ScanOptions

    os.mkfifo(tmp_path / "pipe.png")
    good = _png(tmp_path / "good.png")
    codes = [(data is not None, error.code if error else None) for data, error in (
        _read(str(tmp_path / "pipe.png"), ScanOptions()),
        _read(str(tmp_path), ScanOptions()),
        _read(str(good), ScanOptions(max_bytes=good.stat().st_size - 1)),
        _read(str(good), ScanOptions()),
    )]
    assert codes == [(False, "not_a_file"), (False, "not_a_file"), (False, "too_large"), (True, None)]
