"""Latent diffusion: class conditioning, classifier-free guidance, checkpoints, labelled output, slice loading."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from generators import Generator, ImageDataset, create_generator, generate
from generators.guidance import ClassifierFreeGuidance

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4, num_train_timesteps=50, num_inference_steps=3,
            batch_size=4)


def _labels_csv(folder, path):
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in (".png", ".jpg"))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class"])
        for i, name in enumerate(files):
            w.writerow([name, "" if i == 0 else ("viral" if i % 2 else "bacterial")])
    return path


@pytest.fixture
def labelled(tmp_path, gray_png_folder):
    return ImageDataset(gray_png_folder, resolution=16, labels=_labels_csv(gray_png_folder, tmp_path / "l.csv"))


@pytest.fixture
def tiny_ldm(labelled):
    return create_generator("ldm", resolution=16, channels=1, **TINY).fit(labelled, max_steps=3, progress=False,
                                                                          device="cpu")


def test_trains_and_samples_at_the_configured_size(tiny_ldm, rgb_jpeg_folder):
    assert tiny_ldm.classes == ["bacterial", "viral"] and tiny_ldm.steps_ == 3
    x = tiny_ldm.sample(3, seed=1, class_label="viral")
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x, tiny_ldm.sample(3, seed=1, class_label="viral"))
    rgb = ImageDataset(rgb_jpeg_folder, resolution=16)
    gen = create_generator("ldm", resolution=16, channels=3, **TINY).fit(rgb, max_steps=2, progress=False)
    assert gen.classes == [] and gen.first_stage_.latent_channels == 12  # 3 channels x 4 latent channels
    assert gen.sample(2, seed=0).shape == (2, 16, 16, 3)


def test_class_and_guidance_change_the_output(tiny_ldm):
    viral = tiny_ldm.sample(2, seed=5, class_label="viral")
    assert np.abs(viral - tiny_ldm.sample(2, seed=5, class_label="bacterial")).max() > 1e-3
    assert np.abs(viral - tiny_ldm.sample(2, seed=5)).max() > 1e-3  # the null class
    g1 = tiny_ldm.sample(2, seed=5, class_label="viral", guidance=1.0)
    g3 = tiny_ldm.sample(2, seed=5, class_label="viral", guidance=3.0)
    assert np.abs(g1 - g3).max() > 1e-3
    np.testing.assert_array_equal(viral, g3)  # 3 is the default scale


def test_inpainting_keeps_the_known_latent_and_resamples_the_hole():
    from generators.schedulers import DDIMScheduler, ddim_inpaint

    sched = DDIMScheduler(100, "linear")

    def model(x, t):  # the ε that says x_0 = 1 everywhere
        a = sched.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return (x - a.sqrt()) / (1 - a).sqrt()

    known = torch.zeros(1, 2, 4, 4)
    keep = torch.ones(1, 1, 4, 4)
    keep[..., 1:3, 1:3] = 0
    kept = keep.expand_as(known) > 0
    for strength, resample in ((1.0, 1), (0.5, 3)):
        z = ddim_inpaint(model, sched, known, keep, strength=strength, resample=resample, num_inference_steps=10,
                         generator=torch.Generator().manual_seed(0))
        assert torch.equal(z[kept], known[kept])  # kept cells exactly
        torch.testing.assert_close(z[~kept], torch.ones(8))  # the hole is what the model says
    with pytest.raises(ValueError, match="strength"):
        ddim_inpaint(model, sched, known, keep, strength=0.0)


def test_ldm_inpaint_changes_the_hole_and_refuses_another_size(tiny_ldm):
    img = torch.full((1, 1, 16, 16), 0.5)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 4:8, 4:8] = 1
    a = tiny_ldm.inpaint(img, hole, seed=1, class_label="viral")
    assert a.shape == (1, 1, 16, 16) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, tiny_ldm.inpaint(img, hole, seed=1, class_label="viral"))
    assert not torch.equal(a, tiny_ldm.inpaint(img, hole, seed=2, class_label="viral"))
    with pytest.raises(ValueError, match="16 px"):
        tiny_ldm.inpaint(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))


def test_unknown_class_and_misused_guidance_are_refused(tiny_ldm, gray_png_folder):
    with pytest.raises(ValueError, match="unknown class 'fungal'; this model knows: bacterial, viral"):
        tiny_ldm.sample(1, class_label="fungal")
    with pytest.raises(ValueError, match="--guidance needs --class"):
        tiny_ldm.sample(1, guidance=2.0)
    with pytest.raises(ValueError, match="guidance must be >= 0"):
        tiny_ldm.sample(1, class_label="viral", guidance=-1)
    plain = create_generator("ldm", resolution=16, **TINY).fit(ImageDataset(gray_png_folder, resolution=16),
                                                                max_steps=1, progress=False)
    with pytest.raises(ValueError, match="unconditional ldm generator: it takes no --class"):
        plain.sample(1, class_label="viral")


def test_guidance_combines_conditional_and_null_predictions():
    class Stub(torch.nn.Module):
        def forward(self, x, t, y):  # ε = class index, so the mix is visible
            return torch.zeros_like(x) + (0.0 if y is None else y.view(-1, 1, 1, 1).float())

    x, t, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), torch.tensor([1, 1])
    assert ClassifierFreeGuidance(Stub(), y, null=2, scale=1.0)(x, t).unique().tolist() == [1.0]
    assert ClassifierFreeGuidance(Stub(), y, null=2, scale=3.0)(x, t).unique().tolist() == [2.0 + 3.0 * (1 - 2)]
    assert ClassifierFreeGuidance(Stub(), None, null=2, scale=3.0)(x, t).unique().tolist() == [0.0]


def test_save_load_and_resume_give_the_same_samples(tmp_path, labelled):
    out = tmp_path / "run"
    gen = create_generator("ldm", resolution=16, **TINY).fit(labelled, max_steps=2, progress=False, out_dir=out)
    ref = gen.sample(2, seed=9, class_label="bacterial", guidance=2.0)
    loaded = Generator.load(out, device="cpu")
    assert loaded.classes == ["bacterial", "viral"]
    np.testing.assert_array_equal(loaded.sample(2, seed=9, class_label="bacterial", guidance=2.0), ref)
    gen.save(tmp_path / "ship", inference_only=True)
    shipped = Generator.load(tmp_path / "ship", device="cpu")
    assert not any(k.startswith("first_stage") for k in _tensor_names(tmp_path / "ship"))  # no encoder shipped
    np.testing.assert_array_equal(shipped.sample(2, seed=9, class_label="bacterial", guidance=2.0), ref)
    resumed = create_generator("ldm", resolution=16, **TINY).fit(labelled, max_steps=4, progress=False, out_dir=out)
    assert resumed.steps_ == 4 and json.loads((out / "config.json").read_text())["params"]["classes"] == [
        "bacterial", "viral"]
    # the latent statistics the UNet was trained on survive the resume
    torch.testing.assert_close(resumed.first_stage_.norm.std, gen.first_stage_.norm.std)


def _tensor_names(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "weights.safetensors"), "pt") as f:
        return list(f.keys())


def test_generate_with_class_writes_labels(tmp_path, gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=64, labels=_labels_csv(gray_png_folder, tmp_path / "l.csv"))
    ckpt = tmp_path / "ldm64"
    create_generator("ldm", resolution=64, **TINY).fit(ds, max_steps=1, progress=False, out_dir=ckpt)
    paths = generate(ckpt, 3, tmp_path / "out", class_label="viral", guidance=3.0, progress=False, batch_size=2)
    assert len(paths) == 3 and cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED).shape == (64, 64)
    rows = list(csv.DictReader(open(tmp_path / "out" / "labels.csv")))
    assert [(r["class"], r["guidance"]) for r in rows] == [("viral", "3.0")] * 3
    with pytest.raises(ValueError, match="unknown class"):
        generate(ckpt, 1, tmp_path / "out2", class_label="fungal", progress=False)


def test_cli_generate_class_and_guidance(tmp_path, gray_png_folder):
    from click.testing import CliRunner

    import cli

    labels = _labels_csv(gray_png_folder, tmp_path / "l.csv")
    runner = CliRunner()
    res = runner.invoke(cli.main, ["train", "generator", "ldm", "--data", str(gray_png_folder), "--labels",
                                   str(labels), "--resolution", "64", "--max-steps", "1", "--out",
                                   str(tmp_path / "ck"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli.main, ["generate", str(tmp_path / "ck"), "-n", "2", "--class", "bacterial",
                                   "--guidance", "1.5", "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "o" / "labels.csv")))
    assert {(r["class"], r["guidance"]) for r in rows} == {("bacterial", "1.5")}
    res = runner.invoke(cli.main, ["generate", str(tmp_path / "ck"), "-n", "1", "--class", "viral", "--out",
                                   str(tmp_path / "o3"), "-q"])
    assert res.exit_code == 0, res.output
    (row,) = csv.DictReader(open(tmp_path / "o3" / "labels.csv"))
    assert float(row["guidance"]) == 3.0  # the model's default scale is what was used, and what is recorded
    res = runner.invoke(cli.main, ["generate", str(tmp_path / "ck"), "--class", "fungal", "--out",
                                   str(tmp_path / "o2"), "-q"])
    assert res.exit_code != 0 and "this model knows: bacterial, viral" in res.output


def test_bundled_plan_excludes_held_out_files_and_reads_cxr_labels(tmp_path):
    from benchmarks.datafiles import is_heldout
    from benchmarks.datasets import is_holdout
    from generators.train_bundled import training_files

    folder = tmp_path / "cxr_kermany"
    folder.mkdir()
    names = [f"person{i}_{'virus' if i % 3 else 'bacteria'}_{i}.jpeg" for i in range(40)]
    for n in names:
        (folder / n).write_bytes(b"")
    files, dkw, record = training_files(folder, {"labels": "file_name", "exclude_heldout": True, "hflip": True})
    kept = {f.name for f in files}
    assert kept == {n for n in names if not (is_heldout(folder / n) or is_holdout(n))}
    assert 0 < record["held_out_files_excluded"] == len(names) - len(kept)
    assert dkw["hflip"] is True and set(dkw["labels"]) == kept
    assert dkw["labels"]["person1_virus_1.jpeg"] == "viral" or "person1_virus_1.jpeg" not in kept
    assert {dkw["labels"][n] for n in kept} == {"viral", "bacterial"}
