"""`medaudit bench utility`: patient split, condition counts, bootstrap intervals, and the command end to end on a
tiny task with a class-conditional test double that goes through the real ``generators.api.generate`` path."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from benchmarks import utility_eval as U
from benchmarks.datafiles import is_heldout
from cli import main
from generators.base import Generator
from generators.registry import register_generator

POSITIVE = {"viral", "malignant", "benign"}


def _pattern(positive: bool, rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """A noisy texture with a bright disc (positive) or a bright bar (negative): learnable in a few steps."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    img = 0.3 + 0.05 * rng.standard_normal((side, side))
    cy, cx = rng.uniform(0.35, 0.65, 2)
    if positive:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 0.04] += 0.5
    else:
        img[np.abs(yy - cy) < 0.08] += 0.5
    return np.clip(img, 0, 1).astype(np.float32)


@register_generator("utility_test_double")
class ClassPattern(Generator):
    """A class-conditional stand-in with the bundled generators' interface: ``sample(n, seed, class_label,
    guidance)``; it draws :func:`_pattern` for the class."""

    family = "utility_test_double"

    def __init__(self, classes=("bacterial", "viral"), **kw):
        super().__init__(**kw)
        self.classes = list(classes)

    def _build(self) -> None:
        self.net = torch.nn.Linear(1, 1)

    def _modules(self):
        return {"net": self.net}

    def sample(self, n: int, seed: int = 0, class_label: str | None = None, guidance: float | None = None):
        if class_label not in self.classes:
            raise ValueError(f"unknown class {class_label!r}")
        rng = np.random.default_rng(seed)
        return np.stack([_pattern(class_label in POSITIVE, rng) for _ in range(n)])


@pytest.fixture
def double_ckpt(tmp_path):
    gen = ClassPattern(resolution=64, channels=1, modality="DX")
    gen._ensure_built(torch.device("cpu"))
    return gen.save(tmp_path / "double", inference_only=True)


def _cxr_folder(root, n_patients: int = 24, per_patient: int = 2, seed: int = 0):
    """Kermany-style names: person<N>_{bacteria,virus}_<M>.jpeg, several images per patient."""
    rng = np.random.default_rng(seed)
    d = root / "cxr_kermany"
    d.mkdir(parents=True)
    for p in range(n_patients):
        kind = "virus" if p % 2 else "bacteria"
        for m in range(per_patient):
            img = _pattern(kind == "virus", rng, side=80)
            cv2.imwrite(str(d / f"person{p}_{kind}_{p * 10 + m}.jpeg"), (img * 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
    return d


def test_split_is_by_patient_and_follows_the_heldout_rule(tmp_path):
    items = U.list_items(U.TASKS["cxr"], _cxr_folder(tmp_path, n_patients=40, per_patient=3))
    train, test = U.split_by_patient(items)
    assert len(train) + len(test) == 120 and train and test
    assert not {it.patient for it in train} & {it.patient for it in test}
    # a patient is held out exactly when the project rule holds for its first file
    for it in test:
        first = min((o.path for o in items if o.patient == it.patient), key=lambda p: p.name)
        assert is_heldout(first)

    # mini-MIAS: both breasts of a woman (the labels' patient column) land on one side, whatever the file rule says
    d = tmp_path / "mammo"
    d.mkdir()
    rows = []
    for k in range(1, 121):  # 60 women: enough that the held-out rule picks some
        (d / f"mdb{k:03d}.pgm").write_bytes(b"P5\n4 4\n255\n" + bytes(16))
        rows.append({"file": f"mdb{k:03d}.pgm", "patient": f"P{(k + 1) // 2:03d}",
                     "label": ("normal", "benign", "malignant")[k % 3]})
    with (d / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "patient", "label"])
        w.writeheader()
        w.writerows(rows)
    items = U.list_items(U.TASKS["mammo"], d)
    assert {it.label for it in items} == {0, 1}
    train, test = U.split_by_patient(items)
    assert train and test and not {it.patient for it in train} & {it.patient for it in test}
    assert all(len([it for it in test if it.patient == p]) == 2 for p in {it.patient for it in test})


def test_conditions_state_their_counts():
    got = {c.name: [c.counts(n) for n in (311, 169)] for c in U.CONDITIONS}
    assert got == {
        "real only": [(311, 0), (169, 0)],
        "synthetic only": [(0, 311), (0, 169)],
        "real + synthetic 1:1": [(311, 311), (169, 169)],
        "real + synthetic 1:4": [(311, 1244), (169, 676)],
        "real + synthetic 1:10": [(311, 3110), (169, 1690)],
        "25% real + synthetic": [(78, 233), (42, 127)],
        "50% real + synthetic": [(156, 155), (84, 85)],
    }


def test_bootstrap_interval_brackets_the_point_auc_and_pairs_with_the_baseline():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 40)
    groups = [f"p{i // 2}" for i in range(80)]  # two images per patient
    scores = [y + rng.normal(0, 1.2, 80) for _ in range(3)]
    res = U.auc_with_ci(y, scores, U.cluster_resamples(groups, 300, seed=0), baseline=scores)
    assert res["auc_lo"] < res["auc"] < res["auc_hi"] and 0.6 < res["auc"] < 0.9
    assert res["auc"] == pytest.approx(np.mean([U.mean_auc(y, [s]) for s in scores]))
    assert res["delta"] == 0 and res["delta_lo"] == 0 and res["delta_hi"] == 0  # paired: identical resamples
    # resampling is by patient: both images of a patient come together
    for ix in U.cluster_resamples(groups, 5, seed=2):
        counts = np.bincount(ix, minlength=80)
        assert (counts[0::2] == counts[1::2]).all()


def test_the_classifier_learns_a_visible_class_difference():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 24)
    x = np.stack([(_pattern(bool(c), rng, 32) * 255).astype(np.uint8) for c in y])
    xt = np.stack([(_pattern(bool(c), rng, 32) * 255).astype(np.uint8) for c in y])
    s = U.train_and_score(x, y, xt, channels=1, steps=30, batch=16, seed=0, hflip=False)
    assert U.mean_auc(y, [s]) > 0.9


def test_bench_utility_end_to_end_on_a_tiny_task(tmp_path, double_ckpt, monkeypatch):
    _cxr_folder(tmp_path / "data", n_patients=16, per_patient=1)
    derm = tmp_path / "data" / "derm_isic"
    derm.mkdir()
    (derm / "labels.csv").write_text("file,benign_malignant\n")
    seen = []  # (condition class counts) handed to training
    train = U.train_and_score

    def spy(x, y, x_test, **kw):
        seen.append((int((y == 0).sum()), int((y == 1).sum())))
        return train(x, y, x_test, **kw)

    monkeypatch.setattr(U, "train_and_score", spy)
    doc, db, cache = tmp_path / "B.md", tmp_path / "r.sqlite", tmp_path / "cache"
    args = ["bench", "utility", "--data", str(tmp_path / "data"), "--generator", f"cxr={double_ckpt}",
            "--generator", "derm=no_such_generator", "--size", "32", "--steps", "3", "--batch", "8", "--n-boot", "50",
            "--max-synthetic", "70", "--max-real", "10", "--cache", str(cache), "--db", str(db),
            "--write-docs", str(doc), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    # one section per task, so a task measured later replaces only its own
    assert "<!-- section:utility-cxr -->\n## Synthetic data utility: chest X-ray, bacterial vs viral pneumonia" in text
    items = U.list_items(U.TASKS["cxr"], tmp_path / "data" / "cxr_kermany")
    train_items, _ = U.split_by_patient(items)
    n_all = [sum(it.label == c for it in train_items) for c in (0, 1)]
    n_class = [round(10 * n / sum(n_all)) for n in n_all]  # --max-real 10: a class-stratified subsample
    assert sum(n_class) == 10 < sum(n_all)
    assert f"| {U.REFERENCE} | {sum(n_all)} | 0 | " in text  # the uncapped reference row
    measured = 0
    for cond in U.CONDITIONS:
        counts = [cond.counts(n) for n in n_class]
        n_real, n_syn = sum(r for r, _ in counts), sum(s for _, s in counts)
        row = f"| {cond.name} | {n_real} | {n_syn} | "
        assert row in text
        line = next(ln for ln in text.splitlines() if ln.startswith(row))
        if n_syn > 70:
            assert "not measured: needs" in line
        else:
            measured += 1
            assert "not measured" not in line and [r + s for r, s in counts] in [list(c) for c in seen]
    assert measured + 1 == len(seen) >= 5 and n_all in [list(c) for c in seen]
    # the tasks without a generator or data say so, and say why
    derm = text[text.index("<!-- section:utility-derm -->"):text.index("<!-- /section:utility-derm -->")]
    assert "Not measured: generator 'no_such_generator' not available" in derm and "| real only |" not in derm
    assert "<!-- section:utility-mammo -->" in text and "Not measured: no data folder mammo/" in text
    assert "**cxr** (chest X-ray, bacterial vs viral pneumonia): real only reaches AUC" in text
    # synthetic images were written through generate (stamped files with labels.csv), in the task's format
    files = list(cache.rglob("*.jpg"))
    assert files and all((f.parent / "labels.csv").is_file() for f in files)
    from benchmarks.store import ResultStore

    with ResultStore(db) as store:
        run_id = store.latest_run(evaluation="utility")
        rows = store.results(run_id, metric="auc")
        assert {r["perturbation"] for r in rows} == {U.REFERENCE} | {
            c.name for c in U.CONDITIONS if sum(s for _, s in (c.counts(n) for n in n_class)) <= 70}
        assert all(r["lo"] <= r["value"] <= r["hi"] for r in rows)
        assert {s["detector"] for s in store.skipped(run_id)} == {"derm", "mammo"}
    # a rerun reuses the cached synthetic images (none rewritten)
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    assert CliRunner().invoke(main, args).exit_code == 0
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes


def test_an_unconditional_generator_is_reported_not_measured(tmp_path):
    from generators.api import list_bundled

    name = next(b["name"] for b in list_bundled() if b["name"] == "cxr_gan")
    why = U.check_conditional(name, U.TASKS["cxr"])
    assert why and "unconditional" in why


def test_bench_utility_with_a_tiny_latent_diffusion_model_and_fewer_sampling_steps(tmp_path):
    """The real class-conditional family, trained one step, sampled with --sampling-steps through generate."""
    import json

    from generators import ImageDataset, create_generator

    folder = _cxr_folder(tmp_path / "data", n_patients=12, per_patient=1)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,class\n" + "".join(f"{p.name},{'viral' if '_virus_' in p.name else 'bacterial'}\n"
                                               for p in sorted(folder.iterdir())))
    ckpt = tmp_path / "ldm"
    create_generator("ldm", resolution=64, block_out_channels=(8, 16), norm_num_groups=4, num_train_timesteps=50,
                     num_inference_steps=5, batch_size=4).fit(
        ImageDataset(folder, resolution=64, labels=labels), max_steps=1, progress=False, out_dir=ckpt)
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["bench", "utility", "--data", str(tmp_path / "data"), "--tasks", "cxr",
                                       "--generator", f"cxr={ckpt}", "--sampling-steps", "2", "--size", "32",
                                       "--steps", "2", "--batch", "4", "--n-boot", "20", "--max-synthetic", "25",
                                       "--cache", str(cache), "--db", str(tmp_path / "r.sqlite"), "-q"])
    assert result.exit_code == 0, result.output
    assert "| real + synthetic 1:1 |" in result.stdout and "2 sampling steps" in result.stdout
    variant = next((cache / "checkpoints").iterdir())
    assert json.loads((variant / "config.json").read_text())["params"]["num_inference_steps"] == 2
    assert json.loads((ckpt / "config.json").read_text())["params"]["num_inference_steps"] == 5  # input untouched
    written = list((cache / "pools").rglob("*.jpg"))
    assert {p.parent.name for p in written} == {"bacterial_guidance-default", "viral_guidance-default"}


def test_patient_folds_are_stratified_fixed_and_match_the_generator_training_split(tmp_path):
    from generators.train_bundled import training_files

    folder = _cxr_folder(tmp_path / "data", n_patients=23, per_patient=2)
    items = U.list_items(U.TASKS["cxr"], folder)
    folds = U.patient_folds(items, 3)
    assert folds == U.patient_folds(list(reversed(items)), 3)  # a function of the patients, not of their order
    assert set(folds) == {it.patient for it in items} and set(folds.values()) == {0, 1, 2}
    for label in (0, 1):
        sizes = [sum(1 for it in items if it.label == label and folds[it.patient] == k and it.path.name.endswith(
            "0.jpeg")) for k in range(3)]
        assert max(sizes) - min(sizes) <= 1  # one image per patient ends in 0: patients per fold and class
    # the generator of fold 1 trains on every file except fold 1's patients (the held-out rule no longer applies)
    files, _, record = training_files(folder, {"labels": "file_name", "exclude_heldout": True}, (1, 3))
    assert {f.name for f in files} == {it.path.name for it in items if folds[it.patient] != 1}
    assert record == {"utility_fold_excluded": "1/3", "fold_files_excluded": len(items) - len(files)}


def test_bench_utility_folds_test_every_image_once_with_a_generator_per_fold(tmp_path, monkeypatch):
    _cxr_folder(tmp_path / "data", n_patients=16, per_patient=2)
    gen = ClassPattern(resolution=64, channels=1, modality="DX")
    gen._ensure_built(torch.device("cpu"))
    for k in range(2):
        gen.save(tmp_path / f"double_fold{k}of2", inference_only=True, extra={"utility_fold_excluded": f"{k}/2"})
    tested = []
    train = U.train_and_score

    def spy(x, y, x_test, **kw):
        tested.append(len(x_test))
        return train(x, y, x_test, **kw)

    monkeypatch.setattr(U, "train_and_score", spy)
    base = ["bench", "utility", "--data", str(tmp_path / "data"), "--tasks", "cxr", "--size", "32", "--steps", "2",
            "--batch", "8", "--n-boot", "20", "--max-synthetic", "40", "--cache", str(tmp_path / "cache"),
            "--db", str(tmp_path / "r.sqlite"), "--folds", "2", "-q"]
    result = CliRunner().invoke(main, base + ["--generator", f"cxr={tmp_path}/double_fold{{fold}}of2"])
    assert result.exit_code == 0, result.output
    assert "2-fold cross-validation over patients" in result.stdout
    assert result.stdout.count("the generator's training excluded this fold's patients") == 2
    half = len(tested) // 2  # fold 0's conditions, then fold 1's: their test sets make up all 32 images
    assert len(set(tested[:half])) == len(set(tested[half:])) == 1 and tested[0] + tested[half] == 32
    assert "| real only |" in result.stdout and "| real + synthetic 1:1 |" in result.stdout
    # one generator for every fold cannot be right: not measured, and why
    result = CliRunner().invoke(main, base + ["--generator", f"cxr={tmp_path}/double_fold0of2"])
    assert result.exit_code == 0 and "--folds needs a generator per fold" in result.stdout
