"""Third-party validation: the external folder's loader and normalization, the resampling controls, the
`bench third-party` evaluation end to end, and the `third_party` protocol in `bench run` and the leaderboard.

CI has no external data: the folder here is built at test time with the same layout (manifest.csv per set).
"""

from __future__ import annotations

import csv
import hashlib
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.external import COVERED_MODALITIES, load_external, normalize, pair_name, resolve
from benchmarks.resampling import KERNELS, SCALES, resample
from cli import main


def _texture(rng: np.random.Generator, h: int, w: int, noise: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = 0.45 + 0.2 * np.sin(5 * xx + rng.random()) * np.cos(3 * yy) + rng.normal(0, noise, (h, w))
    return np.clip(img, 0, 1)


def _write_set(folder: Path, files: dict[str, np.ndarray], bad_sha: str | None = None,
               missing: str | None = None) -> None:
    """Image files plus a manifest.csv in the external folder's format (one wrong sha256 / one missing file)."""
    folder.mkdir(parents=True)
    rows = []
    for name, px in files.items():
        u8 = (px * 255).astype(np.uint8)
        if u8.ndim == 3:
            u8 = u8[..., ::-1]
        ok, buf = cv2.imencode(Path(name).suffix, u8)
        assert ok
        data = buf.tobytes()
        (folder / name).write_bytes(data)
        sha = "0" * 64 if name == bad_sha else hashlib.sha256(data).hexdigest()
        rows.append({"file": name, "repo": "someone/repo", "commit": "c" * 40, "path": name.replace("__", "/"),
                     "blob": "b" * 40, "bytes": len(data), "sha256": sha})
    if missing:
        rows.append({"file": missing, "repo": "someone/repo", "commit": "c" * 40, "path": missing, "blob": "b" * 40,
                     "bytes": 1, "sha256": "0" * 64})
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def external(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("external")
    _write_set(root / "synthetic" / "cxr_ldm_iu",
               {f"epoch_{i}__gen_1.png": _texture(rng, 256, 256, 0.05) for i in range(4)}, bad_sha="epoch_3__gen_1.png")
    _write_set(root / "real" / "cxr_iu_cxrdiffusion", {f"real_{i}.png": _texture(rng, 256, 256, 0.01)
                                                       for i in range(3)})
    _write_set(root / "real" / "cxr_openist", {f"a-{i}-500-500-100.jpg": _texture(rng, 300, 280, 0.01)
                                              for i in range(3)}, missing="gone.jpg")
    gray = _texture(rng, 256, 256, 0.02)
    tinted = np.stack([gray, np.clip(gray * 0.97, 0, 1), gray], axis=2)  # slight chroma, as the CycleGAN fakes
    _write_set(root / "synthetic" / "oct_cyclegan_pwc", {"x_fake_A.png": tinted})
    _write_set(root / "real" / "oct_pwc", {"x_real_A.png": np.repeat(gray[..., None], 3, axis=2)})
    _write_set(root / "real" / "minim_examples", {"example__oct__0.jpg": _texture(rng, 300, 400, 0.02),
                                                  "example__chest-ct__0.jpg": _texture(rng, 320, 320, 0.02)})
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder with two held-out chest X-rays (the resampling controls draw from held-out files only)."""
    from benchmarks.datafiles import is_heldout

    root = tmp_path_factory.mktemp("data")
    (root / "cxr_kermany").mkdir()
    rng = np.random.default_rng(1)
    names = [f"person{i}_bacteria_{i}.jpeg" for i in range(400)]
    held = [n for n in names if is_heldout(root / "cxr_kermany" / n)][:2]
    for n in held + [n for n in names if not is_heldout(root / "cxr_kermany" / n)][:2]:
        cv2.imwrite(str(root / "cxr_kermany" / n), (_texture(rng, 200, 240, 0.02) * 255).astype(np.uint8))
    return root


def _png_chunks(data: bytes) -> list[str]:
    out, i = [], 8
    while i < len(data):
        n = struct.unpack(">I", data[i : i + 4])[0]
        out.append(data[i + 4 : i + 8].decode())
        i += 12 + n
    return out


# ---------------------------------------------------------------------------------------------- loader
def test_normalize_gives_both_classes_one_format():
    rng = np.random.default_rng(0)
    gray = rng.random((300, 400)).astype(np.float32)
    tinted = np.stack([gray, gray * 0.97, gray], axis=2)
    a, b = normalize(np.repeat(gray[..., None], 3, axis=2), "oct"), normalize(tinted, "oct")
    assert a.shape == b.shape == (256, 256)  # gray for OCT: channel equality cannot separate them
    assert normalize(tinted, "derm").shape == (256, 256, 3) and normalize(gray, "derm").shape == (256, 256, 3)
    assert normalize(rng.random((256, 256)), "cxr").shape == (256, 256)
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # 8-bit values


def test_load_external_verifies_tags_and_pairs(external):
    ext = load_external(external)
    assert ext.groups(1) == ["cxr_ldm_iu", "oct_cyclegan_pwc"]
    assert sorted(ext.groups(0)) == ["cxr_iu_cxrdiffusion", "cxr_openist", "minim_examples:ct", "minim_examples:oct",
                                     "oct_pwc"]
    assert ext.pairs() == [("cxr_ldm_iu", "cxr_iu_cxrdiffusion"), ("cxr_ldm_iu", "cxr_openist"),
                           ("oct_cyclegan_pwc", "oct_pwc")]
    assert len(ext.of("cxr_ldm_iu")) == 3  # the one whose bytes differ from the manifest is not used
    assert any("epoch_3__gen_1.png: sha256 differs" in n for n in ext.notes)
    assert any("gone.jpg: listed in the manifest but missing" in n for n in ext.notes)
    assert {im.modality for im in ext.of("minim_examples:ct")} == {"ct"} and "oct" not in COVERED_MODALITIES
    for im in ext.images:
        assert set(_png_chunks(im.png)) == {"IHDR", "IDAT", "IEND"}  # no text, no metadata
        assert cv2.imdecode(np.frombuffer(im.png, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (256, 256)
        assert im.file.encode() not in im.png
    assert load_external(external).hash == ext.hash and pair_name("a b", "c") == "a_b~c"


def test_resolve_reads_the_environment(external, monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAUDIT_EXTERNAL", raising=False)
    assert resolve(None) is None and resolve(tmp_path / "nope") is None
    monkeypatch.setenv("MEDAUDIT_EXTERNAL", str(external))
    assert resolve(None) == external
    with pytest.raises(FileNotFoundError, match="neither synthetic/ nor real/"):
        load_external(tmp_path)


# ---------------------------------------------------------------------------------------------- controls
def test_resampling_kernels_are_distinct_and_keep_the_layout():
    x = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    rgb = np.random.default_rng(1).random((32, 40, 3)).astype(np.float32)
    outs = {}
    for k in KERNELS:
        for scale, f, trip in SCALES:
            y = resample(x, k, f, trip)
            assert y.shape == ((64, 48) if trip else (round(64 * f), round(48 * f))), (k, scale)
            assert y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1
        outs[k] = resample(x, k, 0.5, True)
        assert resample(rgb, k, 0.5, True).shape == rgb.shape
    assert len({o.tobytes() for o in outs.values()}) == len(KERNELS)  # thirteen different kernels
    assert not np.allclose(outs["torch_bilinear"], outs["torch_bilinear_aa"])


def test_not_assessed_is_counted_never_low(tmp_path):
    from benchmarks.third_party import Verdict, make_scanner, score_file, set_figures, weights_hash
    from forensics.formatpath import encode_png
    from forensics.fusion import BUNDLED_WEIGHTS

    scanner = make_scanner(None)
    assert weights_hash(make_scanner(BUNDLED_WEIGHTS)) == weights_hash(scanner)  # --weights DIR reaches the scanner
    with pytest.raises(SystemExit, match="no pixel analyzer could load from"):
        make_scanner(tmp_path)  # an empty folder: nothing would be measured
    flat = score_file(scanner, encode_png(np.full((64, 64), 0.5, np.float32)))  # no texture: pixel analyzers abstain
    assert flat.assessed is False
    figs = set_figures([flat, Verdict(0.7, "medium", True), Verdict(0.95, "high", True)], n_boot=20, seed=0)
    assert figs["not_assessed"].value == pytest.approx(1 / 3)
    assert figs["share_medium"].value == pytest.approx(2 / 3) and figs["share_high"].value == pytest.approx(1 / 3)


def test_controls_draw_slices_of_held_out_volumes_and_held_out_mammograms(tmp_path, write_volume):
    from benchmarks.datafiles import is_heldout
    from benchmarks.third_party import control_reals

    mri, mammo = tmp_path / "mri_brain", tmp_path / "mammo"
    mri.mkdir()
    mammo.mkdir()
    volumes = [f"IXI{i:03d}-HH-{i}_T1.nii.gz" for i in range(100)]
    held = [n for n in volumes if is_heldout(mri / n)][:1]
    for i, n in enumerate(held + [n for n in volumes if not is_heldout(mri / n)][:1]):
        write_volume(mri / n, seed=i)
    films = [f"mdb{i:03d}.pgm" for i in range(1, 100)]
    rng = np.random.default_rng(0)
    for n in [n for n in films if is_heldout(mammo / n)][:2] + [n for n in films if not is_heldout(mammo / n)][:1]:
        cv2.imwrite(str(mammo / n), (_texture(rng, 90, 70, 0.02) * 255).astype(np.uint8))
    (mammo / "labels.csv").write_text("file,label\n")
    reals, notes = control_reals(tmp_path, 5, seed=0, progress=False)
    assert set(reals) == {"mri", "mammo"}
    assert len(reals["mri"]) == 5  # five slices of the one held-out volume, not one image per volume
    assert len({x.tobytes() for x in reals["mri"]}) == 5 and all(x.shape == (256, 256) for x in reals["mri"])
    assert len(reals["mammo"]) == 2  # only the held-out films
    assert "cxr_kermany: not in " + str(tmp_path) in notes and not any("labels.csv" in n for n in notes)
    again, _ = control_reals(tmp_path, 5, seed=0, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(again["mri"], reals["mri"], strict=True))


# ---------------------------------------------------------------------------------------------- end to end
def test_bench_third_party_end_to_end(external, data_dir, tmp_path):
    from benchmarks.resampling import JPEG_QUALITIES
    from benchmarks.store import ResultStore

    doc, db = tmp_path / "B.md", tmp_path / "r.sqlite"
    result = CliRunner().invoke(main, ["bench", "third-party", "--external", str(external), "--data", str(data_dir),
                                       "--n-control", "2", "--n-boot", "20", "--workers", "1", "-q",
                                       "--db", str(db), "--write-docs", str(doc)])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "<!-- section:third-party -->\n## Third-party generators" in text and "Command: `medaudit " in text
    assert "| cxr_ldm_iu (cxr) | cxr_openist | 3 / 3 |" in text
    assert "| cxr_ldm_iu (cxr) | cxr_iu_cxrdiffusion | 3 / 3 |" in text
    assert "| oct_cyclegan_pwc (oct) - modality not covered | oct_pwc | 1 / 1 |" in text
    assert "| minim_examples:oct | oct | 1 |" in text and "100% not assessed" in text
    assert "n = 2 per cell: cxr 2" in text and "| pil_lanczos |" in text and "| torch_bicubic_aa |" in text
    assert "sha256 differs from the manifest" in text and "with the shipped weights" in text
    with ResultStore(db) as store:
        run_id = store.latest_run(evaluation="third_party")
        rows = store.results(run_id)
    got = {(r["subset"], r["perturbation"], r["metric"]) for r in rows}
    assert ("cxr_ldm_iu~cxr_openist", "none", "auc") in got and ("cxr_openist", "none", "share_medium") in got
    assert ("minim_examples:oct", "none", "not_assessed") in got
    controls = {p for _s, p, _m in got if p.startswith("control:")}
    assert len(controls) == 1 + len(KERNELS) * len(SCALES) + len(JPEG_QUALITIES)
    n = {r["subset"]: (r["n_fake"], r["n_real"]) for r in rows if r["metric"] == "auc"}
    assert n["cxr_ldm_iu~cxr_openist"] == (3, 3)


def test_bench_third_party_needs_an_external_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAUDIT_EXTERNAL", raising=False)
    result = CliRunner().invoke(main, ["bench", "third-party", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "no external folder: give --external DIR or set MEDAUDIT_EXTERNAL" in result.output


def test_weights_option_reaches_the_evaluation(tmp_path, monkeypatch, external):
    from benchmarks import evaluations

    calls = []
    monkeypatch.setattr(evaluations, "run_evaluation",
                        lambda name, **kw: calls.append((name, kw)) or ("r", evaluations.Section("t", "T", "md")))
    result = CliRunner().invoke(main, ["bench", "third-party", "--external", str(external), "--data", str(tmp_path),
                                       "--weights", str(tmp_path), "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    name, kw = calls[0]
    assert name == "third_party" and kw["weights"] == tmp_path and kw["external"] == external
    result = CliRunner().invoke(main, ["bench", "resampling", "--data", str(tmp_path), "--weights", str(tmp_path),
                                       "--n-control", "5", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    assert calls[1][0] == "resampling_controls" and calls[1][1]["n_control"] == 5


# ---------------------------------------------------------------------------------------------- bench run
def _toy_set(n: int = 30):
    """A small in-memory chest X-ray benchmark set: smooth reals, noisy fakes of one generator."""
    from benchmarks.datasets import from_arrays

    rng = np.random.default_rng(0)
    ims = [_texture(rng, 64, 64, 0.05 if i % 2 else 0.005).astype(np.float32) for i in range(n)]
    labels = [i % 2 for i in range(n)]
    splits = [("train", "train", "train", "val", "test")[(i // 2) % 5] for i in range(n)]
    gens = ["gan_a" if y else None for y in labels]
    return from_arrays(ims, labels, splits=splits, generators=gens, modalities=["cxr"] * n,
                       families=["gan" if y else "real" for y in labels])


def test_third_party_protocol_is_skipped_without_the_folder(monkeypatch):
    from benchmarks.protocols import tasks

    monkeypatch.delenv("MEDAUDIT_EXTERNAL", raising=False)
    made, notes = tasks(_toy_set(), ["third_party"])
    assert made == [] and notes == ["third_party: needs the external validation folder (--external DIR or "
                                    "$MEDAUDIT_EXTERNAL; none given)"]


class _CountingDetector:
    """Mean brightness as P(fake); counts its fits (the third_party task must reuse in_distribution's fit)."""

    name, version, threshold = "counting", "1", 0.5
    fits = 0

    def fit(self, images, labels):
        type(self).fits += 1
        return self

    def predict_proba(self, images):
        return np.asarray([float(np.mean(x)) for x in images], dtype=np.float64)

    def weights_hash(self):
        return "none"


def test_third_party_task_reuses_the_fit_and_measures_each_pair(external):
    from benchmarks.protocols import DetectorSpec, run

    rows = []
    _CountingDetector.fits = 0
    notes = run(_toy_set(), [DetectorSpec("counting", _CountingDetector)],
                protocols=["third_party", "leave_one_generator_out", "in_distribution"],
                record=lambda **row: rows.append(row), n_boot=0, external=external, external_max=2)
    assert _CountingDetector.fits == 1  # third_party and in_distribution train on the same items: one fit
    assert notes == ["leave_one_generator_out: needs two generators of one modality; cxr: gan_a"]
    tp = [r for r in rows if r.get("protocol") == "third_party" and r["kind"] == "metric"]
    assert {r["subset"] for r in tp} == {"cxr_ldm_iu~cxr_iu_cxrdiffusion", "cxr_ldm_iu~cxr_openist"}
    assert {r["unseen"] for r in tp} == {1} and {r["metric"] for r in tp} >= {"auc", "tpr@1%fpr", "fpr@thr"}
    assert {(r["n_fake"], r["n_real"]) for r in tp} == {(2, 2)}  # at most external_max images per set


def test_third_party_protocol_ranks_every_detector_on_the_same_sets(external, tmp_path):
    from benchmarks.leaderboard import collect, render_html, render_leaderboard_md, render_protocols_md
    from benchmarks.run import run_benchmark
    from benchmarks.store import ResultStore

    db = tmp_path / "r.sqlite"
    run_id = run_benchmark(profile="quick", data_dir=None, db=db, dataset=_toy_set(), external=external,
                           detectors=["dzanic", "frequency"], protocols=["third_party"],
                           overrides={"n_boot": 20, "grid_max": 6, "detector_kw": {"dzanic": {"size": 64}}},
                           command="pytest", progress=False)
    with ResultStore(db) as store:
        rows = store.results(run_id, protocol="third_party")
        data = collect(store, run_id)
    subsets = {r["subset"] for r in rows}
    assert subsets == {"cxr_ldm_iu~cxr_iu_cxrdiffusion", "cxr_ldm_iu~cxr_openist"}  # OCT: not a covered modality
    assert {r["unseen"] for r in rows} == {1}  # the shipped detectors never saw these generators either
    assert {(r["n_fake"], r["n_real"]) for r in rows if r["metric"] == "auc"} == {(3, 3)}
    assert data["ranked_by"] == "third_party"
    board = {b["detector"]: b for b in data["board"]}
    assert board["frequency"]["tp_sets"] == board["dzanic"]["tp_sets"] == 2  # pre-trained, yet ranked
    assert {board["frequency"]["rank"], board["dzanic"]["rank"]} == {1, 2}
    md = render_leaderboard_md(data)
    assert "TPR@1%FPR third-party (mean / worst)" in md and "(2 sets)" in md
    assert "Third-party generators (never trained on by any detector): cxr_ldm_iu~cxr_openist" in (
        render_protocols_md(data))
    assert "TPR@1%FPR third-party" in render_html(data)
