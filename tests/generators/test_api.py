"""The public functions cli.py uses: train_generator, generate, load_generator, list_bundled."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pydicom
import pytest

from forensics import provenance as P
from generators import generate, list_bundled, load_generator, train_generator
from generators.provenance import read_png_text


def test_train_generator_writes_a_resumable_checkpoint(tmp_path, gray_png_folder):
    out = train_generator(
        "vae",
        [str(gray_png_folder)],
        str(tmp_path / "ck"),
        resolution=8,
        max_steps=2,
        batch_size=4,
        progress=False,
        generator_kwargs={"base": 4, "z_dim": 4},
    )
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["family"] == "vae" and cfg["steps"] == 2 and cfg["params"]["batch_size"] == 4
    assert (out / "weights.safetensors").is_file() and (out / "samples.png").is_file()
    train_generator("vae", [str(gray_png_folder)], str(out), max_steps=3, progress=False)
    assert json.loads((out / "config.json").read_text())["steps"] == 3
    with pytest.raises(ValueError, match="holds a 'vae' checkpoint"):
        train_generator("gan", [str(gray_png_folder)], str(out), max_steps=4, progress=False)


def test_generate_png_is_stamped_and_labelled(tmp_path, tiny_gan_ckpt):
    from forensics.watermark import detect

    paths = generate(str(tiny_gan_ckpt), 3, str(tmp_path / "out"), seed=5, progress=False)
    assert [p.name for p in paths] == [f"tiny_gan_5_{i:05d}.png" for i in range(3)]
    for i, p in enumerate(paths):
        text = read_png_text(p)
        meta = json.loads(text[P.PNG_KEYWORD])
        assert meta["generator"] == "tiny_gan" and meta["seed"] == 5 and meta["index"] == i
        assert P.DIGITAL_SOURCE_TYPE in text[P.XMP_KEYWORD]
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
        back = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        assert detect(back).present, p.name


def test_generate_is_reproducible_and_resumes(tmp_path, tiny_gan_ckpt):
    a = generate(str(tiny_gan_ckpt), 2, str(tmp_path / "a"), seed=1, progress=False)
    b = generate(str(tiny_gan_ckpt), 2, str(tmp_path / "b"), seed=1, progress=False)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(cv2.imread(str(pa), -1), cv2.imread(str(pb), -1))
    mtime = a[0].stat().st_mtime_ns
    generate(str(tiny_gan_ckpt), 2, str(tmp_path / "a"), seed=1, progress=False)
    assert a[0].stat().st_mtime_ns == mtime


def test_generate_dicom(tmp_path, tiny_gan_ckpt):
    paths = generate(str(tiny_gan_ckpt), 2, str(tmp_path / "dcm"), fmt="dcm", progress=False)
    assert all(p.suffix == ".dcm" for p in paths)
    a, b = (pydicom.dcmread(p) for p in paths)
    assert a.ConversionType == "SYN" and list(a.ImageType) == ["DERIVED", "SECONDARY"] and a.Modality == "DX"
    assert a.pixel_array.shape == (64, 64)
    assert a.SOPInstanceUID != b.SOPInstanceUID
    block = a.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert block[P.DICOM_ELEMENTS["generator"]].value == "tiny_gan"


def test_generate_rejects_unknown_format_and_name(tmp_path, tiny_gan_ckpt):
    with pytest.raises(ValueError, match="unknown format"):
        generate(str(tiny_gan_ckpt), 1, str(tmp_path), fmt="gif")
    with pytest.raises(FileNotFoundError, match="neither a bundled generator"):
        load_generator("no_such_model")


def test_load_generator_by_path(tiny_gan_ckpt):
    gen = load_generator(str(tiny_gan_ckpt), device="cpu")
    assert gen.family == "gan" and gen.name_ == "tiny_gan"
    assert gen.sample(2).shape == (2, 64, 64)


def test_list_bundled_records():
    for rec in list_bundled():
        assert set(rec) >= {"name", "family", "modality", "resolution", "channels", "path", "size_bytes"}
