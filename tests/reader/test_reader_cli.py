"""`medaudit reader` from the command line: invite, results and their exports, usage errors, the demo study."""

from __future__ import annotations

import csv
import io
import json

import pytest
from _reader_data import make_folders
from click.testing import CliRunner

from benchmarks.reader.store import Study
from cli import main


def _run(*args):
    return CliRunner().invoke(main, ["reader", *map(str, args)])


def _read_all(study, name, answer):
    with Study(study) as s:
        reader, _ = s.add_reader(name, "blinded", seed=3)
        while (item := s.current(reader.id)).image_id is not None:
            s.mark_shown(reader.id, item.image_id)
            s.record_answer(reader.id, item.image_id, answer=answer(s.image(item.image_id)["truth"]), confidence=5,
                            x=0.5, y=0.5, client_ms=2500.0)


def test_invite_prints_a_working_token_once(study):
    out = _run("invite", study, "dr a", "--mode", "teaching")
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["mode"] == "teaching" and info["path"] == f"/r/{info['token']}"
    with Study(study) as s:
        assert s.reader_by_token(info["token"]).name == "dr a"
        assert info["token"] not in json.dumps([dict(r) for r in s.db.execute("SELECT * FROM readers")])
    assert _run("invite", study, "dr a").exit_code == 2  # names are unique
    assert _run("invite", study, "x", "--mode", "open").exit_code == 2


def test_results_json_csv_answers_and_html(study, tmp_path):
    _read_all(study, "perfect", lambda truth: truth)
    _read_all(study, "believer", lambda truth: "real")
    out = _run("results", study, "--html", tmp_path / "results.html")
    assert out.exit_code == 0, out.output
    results = json.loads(out.stdout)
    by_name = {r["reader"]: r for r in results["readers"]}
    assert by_name["perfect"]["accuracy"]["value"] == 1.0 and by_name["perfect"]["auc"]["value"] == 1.0
    assert by_name["perfect"]["three_way_accuracy"]["value"] == 1.0
    assert by_name["believer"]["sensitivity"]["value"] == 0.0 and by_name["believer"]["specificity"]["value"] == 1.0
    assert by_name["perfect"]["median_s"] == 2.5
    # they agree on the 3 real images only: observed 0.5, by chance 0.625 -> kappa (0.5 - 0.625) / 0.375
    assert results["agreement"] == {"kappa": pytest.approx(-1 / 3, abs=1e-4), "readers": 2, "images": 6}
    assert [f["fooled"] for f in results["fooled"]] == [1, 1, 1]  # the believer, on each fake
    assert "<svg" in (tmp_path / "results.html").read_text()

    rows = list(csv.DictReader(io.StringIO(_run("results", study, "--format", "csv").stdout)))
    assert [r["who"] for r in rows] == ["perfect", "believer", "detector@high", "detector@medium"]
    answers = list(csv.DictReader(io.StringIO(_run("results", study, "--answers").stdout)))
    assert len(answers) == 12 and {a["truth"] for a in answers} == {"real", "synthetic", "tampered"}
    assert all(a["x"] == "0.5" for a in answers)


def test_usage_errors(study, tmp_path):
    assert _run("serve").exit_code == 2
    assert _run("serve", study, "--demo").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run("new", study, "--real", empty, "--synthetic", empty, "-n", "4").exit_code == 2  # exists
    out = _run("new", tmp_path / "new.sqlite", "--real", empty, "--synthetic", empty, "-n", "4")
    assert out.exit_code == 2 and "no files" in out.output
    not_a_study = tmp_path / "x.sqlite"
    not_a_study.write_bytes(b"SQLite format 3\0" + bytes(100))
    assert _run("results", not_a_study).exit_code == 2


def test_unreadable_files_are_reported_and_replaced(tmp_path):
    folders = make_folders(tmp_path / "in")
    (folders["real"] / "broken.dcm").write_bytes(b"DICM but not really")
    (folders["real"] / "notes.txt").write_text("not an image")
    out = _run("new", tmp_path / "s.sqlite", "--real", folders["real"], "--synthetic", folders["synthetic"],
               "-n", "8", "--size", "64", "--analyzers", "metadata", "-q")  # more than there are: every file is tried
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["images"] == {"real": 3, "synthetic": 2}
    assert {s["code"] for s in summary["skipped"]} <= {"unsupported_format", "corrupt_image", "truncated"}
    assert len(summary["skipped"]) == 2
    with Study(tmp_path / "s.sqlite") as s:  # nothing of the file names, no header
        dump = "\n".join(s.db.iterdump())
    assert "patient_" not in dump and "a1111" not in dump and "CompressedSamples" not in dump


@pytest.mark.slow
def test_demo_study_is_built_from_shipped_files(tmp_path, monkeypatch, one_torch_thread):
    from benchmarks.reader.build import demo_study

    monkeypatch.setenv("MEDAUDIT_CACHE", str(tmp_path / "cache"))
    path = demo_study(progress=False)
    assert path.is_relative_to(tmp_path / "cache") and demo_study(progress=False) == path  # built once
    with Study(path) as s:
        images = s.images_table()
        tampered = s.db.execute("SELECT region FROM images WHERE truth = 'tampered'").fetchall()
    counts = {t: sum(i["truth"] == t for i in images) for t in ("real", "synthetic", "tampered")}
    from generators import list_bundled

    assert counts == {"real": 7, "synthetic": len(list_bundled()), "tampered": 1}  # one sample per bundled generator
    assert all(max(i["width"], i["height"]) == 512 for i in images)  # one display size: size gives nothing away
    assert len(json.loads(tampered[0]["region"])) == 4
    synthetic_risks = [i["risk"] for i in images if i["truth"] == "synthetic"]
    assert min(synthetic_risks) > 0.9  # the bundled generators' outputs are stamped


def test_bench_reader_times_every_answer(tmp_path):
    out = CliRunner().invoke(main, ["bench", "reader", "-n", "4", "--size", "64", "--no-browser", "--db",
                                    str(tmp_path / "r.sqlite"), "--write-docs", str(tmp_path / "B.md")])
    assert out.exit_code == 0, out.output
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| http")]
    assert [r[0].strip() for r in rows] == ["http", "http CPU"]
    assert all(r[2].strip() == "3" and float(r[3]) > 0 for r in rows)  # the first image has no answer before it
    assert "<!-- section:reader -->" in (tmp_path / "B.md").read_text()
