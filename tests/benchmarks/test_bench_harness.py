"""Datasets, perturbations, protocols end to end, the results store, the leaderboard (md, html, browser), the CLI."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.datasets import Item, build_dataset, dataset_hash, from_arrays, load_dataset, matched_path
from benchmarks.leaderboard import collect, render_html, render_markdown, roc_svg
from benchmarks.perturbations import GRID, controls
from benchmarks.store import ResultStore


def _toy_set(n: int = 60, seed: int = 0):
    """Reals are smooth, fakes of 'gan_a' / 'vae_b' carry two noise levels; 60% train, 20% val, 20% test."""
    rng = np.random.default_rng(seed)
    ims, labels, splits, gens = [], [], [], []
    for i in range(n):
        lab = i % 2
        base = cv2.resize(rng.random((16, 16)).astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC)
        g = ("gan_a", "vae_b")[(i // 2) % 2] if lab else None
        x = base + (rng.normal(0, 0.06 if g == "gan_a" else 0.03, base.shape) if lab else 0)
        ims.append(np.clip(x, 0, 1).astype(np.float32))
        labels.append(lab)
        gens.append(g)
        splits.append(("train", "train", "train", "val", "test")[(i // 2) % 5])
    fam = [("gan" if g == "gan_a" else "vae") if g else "real" for g in gens]
    return from_arrays(ims, labels, splits=splits, generators=gens, modalities=["cxr"] * n, families=fam)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import torch

    from benchmarks.run import run_benchmark

    torch.set_num_threads(1)
    db = tmp_path_factory.mktemp("bench") / "results.sqlite"
    run_id = run_benchmark(profile="quick", data_dir=None, db=db, dataset=_toy_set(),
                           detectors=["durall", "dzanic", "benchmarks.baselines.frank_dct:FrankDCTDetector",
                                      "suite"],
                           overrides={"n_boot": 30, "grid_max": 12,
                                      "detector_kw": {"durall": {"size": 64}, "dzanic": {"size": 64}}},
                           command="pytest", progress=False)
    return db, run_id


# ---------------------------------------------------------------------------------------------- datasets
def test_dataset_hash_is_stable_and_changes_with_any_item():
    a, b = _toy_set(), _toy_set()
    assert a.hash == b.hash
    items = list(a.items)
    items[3] = dataclasses.replace(items[3], sha256="0" * 64)
    assert dataset_hash(items, a.recipe) != a.hash
    items = list(a.items)
    items[5] = dataclasses.replace(items[5], split="train" if items[5].split != "train" else "test")
    assert dataset_hash(items, a.recipe) != a.hash
    assert dataset_hash(list(reversed(a.items)), a.recipe) == a.hash  # order does not matter


def test_matched_path_gives_the_same_format_to_both_classes():
    rng = np.random.default_rng(0)
    small = rng.random((64, 64)).astype(np.float32)
    big = rng.random((300, 400, 3)).astype(np.float32)
    for x in (small, big):
        y = matched_path(x, 128, np.random.default_rng(1))
        assert y.shape[:2] == (128, 128) and y.dtype == np.float32
        assert np.allclose(y * 255, np.round(y * 255), atol=1e-3)  # 8-bit values after the re-encode


@pytest.mark.slow
def test_build_dataset_caches_and_tags(tmp_path):
    from generators import list_bundled

    if "cxr_gan" not in {b["name"] for b in list_bundled()}:
        pytest.skip("bundled generator cxr_gan not here")
    data = tmp_path / "data" / "cxr_kermany"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(data / f"person{i}_virus_{i}.jpeg"), (rng.random((90, 120)) * 255).astype(np.uint8))
    kw = dict(fakes={"train": 2, "val": 1, "test": 2}, size=64, cache_root=tmp_path / "cache")
    ds = build_dataset(tmp_path / "data", ["cxr_gan"], **kw)
    assert {it.family for it in ds.items} == {"real", "gan"}
    assert all(it.modality == "cxr" for it in ds.items)
    fake = ds.select(label=1)[0]
    assert fake.generator == "cxr_gan" and fake.native == 64
    assert ds.pixels(fake).shape == (64, 64)
    again = build_dataset(tmp_path / "data", ["cxr_gan"], **kw)
    assert again.hash == ds.hash and (tmp_path / "cache" / ds.hash / "manifest.json").is_file()
    assert load_dataset(tmp_path / "cache" / ds.hash).hash == ds.hash
    with pytest.raises(FileNotFoundError, match="real images not found"):
        build_dataset(tmp_path / "nope", ["cxr_gan"], **kw)


def test_build_dataset_reads_brain_mri_volumes_as_slices_and_mammograms(tmp_path, write_volume):
    from benchmarks.datafiles import SLICES_PER_VOLUME
    from generators import list_bundled

    if not {"mri_gan", "mammo_gan"} <= {b["name"] for b in list_bundled()}:
        pytest.skip("bundled generators mri_gan / mammo_gan not here")
    data = tmp_path / "data"
    (data / "mri_brain").mkdir(parents=True)
    (data / "mammo").mkdir()
    stems = [f"IXI{100 + i:03d}-HH-{1000 + i}_T1" for i in range(3)]
    for i, stem in enumerate(stems):
        write_volume(data / "mri_brain" / f"{stem}.nii.gz", seed=i)
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        cv2.imwrite(str(data / "mammo" / f"mdb{n:03d}.pgm"), (rng.random((48, 40)) * 255).astype(np.uint8))
    (data / "mammo" / "labels.csv").write_text("file,label\nmdb001.pgm,normal\n")
    (data / "mammo" / "README.md").write_text("mini-MIAS\n")
    reals_only = {"train": 0, "val": 0, "test": 0}  # no generator is sampled
    for variant, mammo_shape in (("matched", (32, 32)), ("raw", (48, 40))):
        ds = build_dataset(data, ["mri_gan", "mammo_gan"], fakes=reals_only, size=32, variant=variant,
                           cache_root=tmp_path / "cache")
        assert ds.notes == []  # labels.csv and the README are not taken for images
        mri, mammo = ds.select(source="mri_brain"), ds.select(source="mammo")
        assert {it.modality for it in mri} == {"mri"} and {it.modality for it in mammo} == {"mammo"}
        assert [it.id for it in mammo] == [f"real/mammo/mdb{n:03d}.pgm" for n in (1, 2, 3)]
        assert ds.pixels(mammo[0]).shape == mammo_shape
        assert len(mri) == len(stems) * SLICES_PER_VOLUME  # one item per slice, not one image per volume
        for stem in stems:
            vol = [it for it in mri if it.id.startswith(f"real/mri_brain/{stem}_z")]
            assert [it.id for it in vol] == [f"real/mri_brain/{stem}_z{k}.png" for k in range(SLICES_PER_VOLUME)]
            assert {(it.split, it.group) for it in vol} == {(vol[0].split, f"mri_brain/{stem[:6]}")}
            pixels = [ds.pixels(it) for it in vol]
            assert all(x.shape == (32, 32) for x in pixels)
            assert len({x.tobytes() for x in pixels}) == SLICES_PER_VOLUME  # different slices, not one repeated


def test_perturbations_keep_range_and_layout():
    x = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    for name, fn in {**GRID, **controls([16])}.items():
        y = fn(x)
        assert y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1, name
    assert GRID["resize0.5"](x).shape == (24, 24)
    assert not np.array_equal(controls([16])["native16"](x), x)


# ---------------------------------------------------------------------------------------------- protocols / store
def test_end_to_end_protocol_run(finished_run):
    db, run_id = finished_run
    with ResultStore(db) as store:
        rows = store.results(run_id)
        run = store.run(run_id)
        skipped = store.skipped(run_id)
    assert run["status"] == "done" and run["wall_s"] > 0 and run["cpu_s"] > 0
    protos = {(r["protocol"], r["subset"]) for r in rows}
    assert ("in_distribution", "all") in protos
    assert ("leave_one_generator_out", "gan_a") in protos and ("leave_one_generator_out", "vae_b") in protos
    assert any("gan_to_diffusion" in n for n in run["notes"])  # no diffusion generator: said, not hidden
    dets = {r["detector"] for r in rows}
    assert {"durall", "dzanic", "frank_dct"} <= dets
    assert [s["detector"] for s in skipped] in ([], ["suite"])  # suite needs the bundled weights
    auc = [r for r in rows if r["detector"] == "frank_dct" and r["metric"] == "auc" and r["perturbation"] == "none"
           and r["protocol"] == "in_distribution"][0]
    assert auc["value"] > 0.9 and auc["lo"] <= auc["value"] <= auc["hi"]
    logo = [r for r in rows if r["protocol"] == "leave_one_generator_out" and r["metric"] == "tpr@1%fpr"]
    # shipped detectors trained on every generator: on the board, but never counted as unseen-generator figures
    shipped = {"suite", "frequency", "cnn"}
    assert all(r["unseen"] == (0 if r["detector"] in shipped else 1) for r in logo)
    assert any(r["perturbation"] == "jpeg50" for r in rows)
    assert any(r["perturbation"] == "control:native16" or r["perturbation"].startswith("control:") for r in rows)
    assert all(r["dataset_hash"] == run["dataset_hash"] and r["weights_hash"] for r in rows)


def test_store_round_trip(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as s:
        rid = s.start_run(profile="quick", command="x", machine="m", dataset_hash="abc", config={"a": 1})
        s.record(rid, detector="d", version="1", weights_hash="w", protocol="p", subset="all", perturbation="none",
                 metric="auc", value=0.75, lo=0.7, hi=float("nan"), n_real=3, n_fake=4, unseen=1)
        s.record(rid, kind="curve", detector="d", protocol="p", subset="all", perturbation="none", curve="roc",
                 points=[(0.0, 0.0), (1.0, 1.0)])
        s.record(rid, kind="skip", detector="e", reason="no weights")
        s.finish_run(rid, wall_s=1.5, cpu_s=1.0, notes=["n"])
    with ResultStore(tmp_path / "r.sqlite") as s:
        assert s.latest_run() == rid
        (row,) = s.results(rid)
        assert (row["detector"], row["metric"], row["value"], row["lo"], row["unseen"]) == ("d", "auc", 0.75, 0.7, 1)
        assert np.isnan(row["hi"]) and row["dataset_hash"] == "abc" and row["machine"] == "m"
        assert next(s.curves(rid))["points"] == [[0.0, 0.0], [1.0, 1.0]]
        assert s.skipped(rid) == [{"detector": "e", "reason": "no weights"}]
        assert s.run(rid)["config"] == {"a": 1} and s.run(rid)["notes"] == ["n"]


def test_two_benchmarks_share_one_store_while_both_run(tmp_path):
    """bench run and bench detectors at once on the default store: neither may hold the write lock between rows
    (a long run did, and the other failed with "database is locked")."""
    row = dict(detector="d", protocol="p", metric="auc", value=0.5)
    with ResultStore(tmp_path / "r.sqlite") as first, ResultStore(tmp_path / "r.sqlite") as second:
        first.db.execute("PRAGMA busy_timeout = 0")  # fail at once instead of waiting: the lock must be free
        second.db.execute("PRAGMA busy_timeout = 0")
        a = first.start_run(profile="quick", command="run", machine="m", dataset_hash="x")
        first.record(a, **row)
        b = second.start_run(profile="", command="detectors", machine="m", dataset_hash="", evaluation="detectors")
        second.record(b, **row)
        first.record(a, **row)
        assert len(second.results(a)) == 2 and len(first.results(b)) == 1


def test_store_reads_a_database_from_before_evaluations(tmp_path):
    import sqlite3

    from benchmarks.store import _SCHEMA

    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(_SCHEMA)  # the runs table as it was: no evaluation column
    con.execute("INSERT INTO runs (run_id, started, profile, command, machine, dataset_hash, config, status, notes) "
                "VALUES ('old-1', 1.0, 'quick', 'medaudit bench run', 'm', 'h', '{}', 'done', '[]')")
    con.commit()
    con.close()
    with ResultStore(db) as store:
        assert store.latest_run() == "old-1" and store.run("old-1")["evaluation"] == "run"
        new = store.start_run(profile="", command="c", machine="m", dataset_hash="", evaluation="reuse")
        store.finish_run(new, wall_s=1.0, cpu_s=1.0)
        assert store.latest_run() == "old-1" and store.latest_run(evaluation="reuse") == new


# ---------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_markdown(finished_run):
    db, run_id = finished_run
    with ResultStore(db) as store:
        md = render_markdown(collect(store, run_id))
    assert "| rank | detector |" in md and "TPR@1%FPR unseen" in md
    assert "frank_dct" in md and "Leave one generator out" in md and "Shortcut controls" in md
    assert "Perturbation grid" in md


def test_leaderboard_html_escapes_and_plots(finished_run):
    db, run_id = finished_run
    with ResultStore(db) as store:
        data = collect(store, run_id)
    data["run"]["command"] = "<script>alert(1)</script>"
    html = render_html(data)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert html.count("<svg") >= 2 and "polyline" in html and "sortable" in html


def test_roc_svg_is_wellformed_xml():
    import xml.etree.ElementTree as ET

    ET.fromstring(roc_svg([("a<b", [(0.0, 0.0), (0.01, 0.5), (1.0, 1.0)])], "t & u"))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_leaderboard_html_renders_in_headless_chromium(finished_run, tmp_path):
    db, run_id = finished_run
    with ResultStore(db) as store:
        html = render_html(collect(store, run_id))
    page = tmp_path / "board.html"
    page.write_text(html)
    shot = tmp_path / "board.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
           f"file://{page}"]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 5000
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] >= 800
    assert (img < 128).any() and img.std() > 5  # something was drawn, not a blank page
    # the DOM after scripts ran: the sorting script attached without errors and the tables are there
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                          "--no-first-run", "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          f"file://{page}"], capture_output=True, text=True, timeout=120, check=False).stdout
    assert "frank_dct" in dom and "<svg" in dom


# ---------------------------------------------------------------------------------------------- cli
def test_cli_leaderboard(finished_run, tmp_path):
    from click.testing import CliRunner

    from cli import main

    db, run_id = finished_run
    runner = CliRunner()
    res = runner.invoke(main, ["bench", "leaderboard", "--db", str(db), "--format", "md"])
    assert res.exit_code == 0, res.output
    assert "frank_dct" in res.output
    out = tmp_path / "board.html"
    res = runner.invoke(main, ["bench", "leaderboard", "--db", str(db), "--format", "html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!doctype html>")
    res = runner.invoke(main, ["bench", "leaderboard", "--db", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no results store" in res.output


def test_cli_run_without_data_is_a_usage_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    monkeypatch.delenv("MEDAUDIT_DATA", raising=False)
    res = CliRunner().invoke(main, ["bench", "run", "--data", str(tmp_path / "absent"), "--db",
                                    str(tmp_path / "r.sqlite")])
    assert res.exit_code == 2 and "absent" in res.output and "does not exist" in res.output
    res = CliRunner().invoke(main, ["bench", "run", "--db", str(tmp_path / "r.sqlite")])
    assert res.exit_code == 2 and "no data folder: give --data DIR or set MEDAUDIT_DATA" in res.output
    assert "cxr_kermany/" in res.output


def test_docs_sections_written(finished_run, tmp_path):
    from benchmarks.run import write_docs

    db, run_id = finished_run
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nhand-written note\n")
    write_docs(doc, db, run_id, command="make bench", speed_md="| detector |\n|---|\n| x |")
    text = doc.read_text()
    for name in ("leaderboard", "protocols", "speed"):
        assert f"<!-- section:{name} -->" in text
    assert "hand-written note" in text and "Leave one generator out" in text and "make bench" in text


def test_speed_rows():
    import torch

    from benchmarks import speed

    torch.set_num_threads(1)
    rows, notes = speed.run(["durall", "dzanic"], sizes=(64, 128), n=2)
    assert {(r["detector"], r["size"]) for r in rows} == {("durall", 64), ("durall", 128), ("dzanic", 64),
                                                          ("dzanic", 128)}
    assert all(r["images_per_s"] > 0 and r["tracemalloc_peak_mb"] >= 0 for r in rows)
    assert "durall" in speed.to_markdown(rows, notes, 2)


def test_item_is_plain_data():
    it = Item("i", 1, "cxr", "g", "g", "gan", "test", "g/0", "f.png", "0" * 64, 64)
    assert dataclasses.asdict(it)["native"] == 64
    assert isinstance(Path(it.file), Path)


def test_leave_one_generator_out_passes_the_seen_generators_to_fits_groups_detectors():
    from benchmarks.detectors import BaseDetector
    from benchmarks.protocols import DetectorSpec, run

    fits, units = [], []

    class Grouped(BaseDetector):
        name, version, fits_groups = "grouped", "1", True

        def fit(self, images, labels, groups=None, sources=None):
            fits.append(sorted({g for g in groups if g}))
            units.append(set(sources))
            return self

        def predict_proba(self, images):
            return np.asarray([float(np.mean(x)) for x in images])

    rng = np.random.default_rng(0)
    gens = [None, "cxr_gan", "cxr_vae", "cxr_ddpm"] * 6
    patients = [f"patient{i // 8}" for i in range(len(gens))]
    ds = from_arrays([rng.random((16, 16)).astype(np.float32) for _ in gens], [int(g is not None) for g in gens],
                     splits=["train", "val", "test"] * 8, generators=gens, modalities=["cxr"] * len(gens),
                     groups=patients)
    run(ds, [DetectorSpec("grouped", Grouped)], protocols=["leave_one_generator_out"], record=lambda **r: None,
        n_boot=2)
    assert fits == [["cxr_gan", "cxr_vae"], ["cxr_ddpm", "cxr_vae"], ["cxr_ddpm", "cxr_gan"]]
    assert units == [{"patient0", "patient1", "patient2"}] * 3  # the items' split units, for the inner split


def test_run_measures_parts_and_stores_fit_figures():
    from benchmarks.detectors import BaseDetector

    class Parts(BaseDetector):
        name, version = "parts", "1"

        def predict_proba(self, images):
            return np.asarray([float(np.mean(x)) for x in images])

        def predict_with_parts(self, images):
            s = self.predict_proba(images)
            return s, {"half": s / 2}

        def fit_figures(self):
            return {"steps": 7.0}

    ds = _toy_set()
    rows = []
    for parts in (False, True):
        rows.append({(r["detector"], r["metric"]): r["value"] for r in _rows(ds, Parts, parts)})
    assert ("parts.half", "auc") not in rows[0] and rows[0][("parts", "steps")] == 7.0
    assert rows[1][("parts.half", "auc")] == rows[1][("parts", "auc")]  # halving keeps the ranking
    assert rows[1][("parts.half", "tpr@thr")] <= rows[1][("parts", "tpr@thr")]


def _rows(ds, cls, parts):
    from benchmarks.protocols import DetectorSpec, run

    out = []
    run(ds, [DetectorSpec(cls.name, cls)], protocols=["leave_one_generator_out"], n_boot=0, parts=parts,
        record=lambda **r: out.append(r) if r["kind"] == "metric" and r["subset"] == "gan_a" else None)
    return out


def test_from_arrays_keeps_pixels_exactly():
    eight = np.arange(256, dtype=np.float32).reshape(16, 16) / 255.0
    sixteen = (np.arange(256, dtype=np.float32).reshape(16, 16) * 250 + 3) / 65535.0
    ds = from_arrays([eight, sixteen], [0, 1], splits=["train", "test"], generators=[None, "g"])
    x, _ = ds.arrays(ds.items)
    assert ds._cache[ds.items[0].id].dtype == np.uint8 and np.array_equal(x[0], eight)
    assert ds._cache[ds.items[1].id].dtype == np.uint16 and np.array_equal(x[1], sixteen)
    assert [it.group for it in ds.items] == [it.id for it in ds.items]  # one split unit per image by default
