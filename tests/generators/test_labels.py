"""labels.csv beside generated images (PNG and DICOM), the class in DICOM headers, and training labels."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from cli import main
from forensics import provenance as P
from generators import api
from generators.labels import merge_labels, read_labels
from generators.provenance import dicom_bytes, provenance_info


def _rows(folder):
    with open(folder / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _gen(args):
    res = CliRunner().invoke(main, ["generate", *args, "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return res


def test_generate_writes_and_merges_labels_csv_for_png_and_dicom(tmp_path, tiny_gan_ckpt):
    out = tmp_path / "out"
    out.mkdir()
    # an earlier listing with its own column and a file this run will not touch
    (out / "labels.csv").write_text("file,class,note\nold.png,viral,kept\ntiny_gan_0_00001.png,stale,x\n")
    _gen([str(tiny_gan_ckpt), "-n", "2", "--out", str(out)])
    _gen([str(tiny_gan_ckpt), "-n", "2", "--out", str(out), "--format", "dicom", "--seed", "7"])
    rows = {r["file"]: r for r in _rows(out)}
    assert list(_rows(out)[0]) == ["file", "class", "generator", "seed", "guidance", "note"]
    assert set(rows) == {"old.png", "tiny_gan_0_00000.png", "tiny_gan_0_00001.png", "tiny_gan_7_00000.dcm",
                         "tiny_gan_7_00001.dcm"}
    assert rows["old.png"]["class"] == "viral" and rows["old.png"]["note"] == "kept"
    assert rows["tiny_gan_0_00001.png"] == {"file": "tiny_gan_0_00001.png", "class": "", "generator": "tiny_gan",
                                            "seed": "0", "guidance": "", "note": ""}
    assert rows["tiny_gan_7_00001.dcm"]["seed"] == "7"
    ds = pydicom.dcmread(out / "tiny_gan_7_00001.dcm")
    assert ds.ConversionType == "SYN"
    block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert block[P.DICOM_ELEMENTS["generator"]].value == "tiny_gan"
    with pytest.raises(KeyError):  # an unconditional model writes no class element
        block[P.DICOM_CONDITION_ELEMENTS["class"]]
    # a scan of the folder sees the images only: no lock file, labels.csv skipped as a sidecar
    from forensics.inputs import iter_inputs

    assert sorted(os.path.basename(p) for p, _ in iter_inputs([out])) == sorted(set(rows) - {"old.png"})


def test_a_labels_csv_without_file_column_is_refused_before_sampling(tmp_path, tiny_gan_ckpt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").write_text("name,label\na.png,x\n")
    res = CliRunner().invoke(main, ["generate", str(tiny_gan_ckpt), "-n", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "has no 'file' column" in res.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["labels.csv"]


def test_class_goes_into_dicom_header_png_json_and_labels_csv(tmp_path, tiny_gan_ckpt, monkeypatch):
    info = provenance_info("g", "1", 3, index=0, **{"class": "viral", "guidance": 2.5})
    ds = pydicom.dcmread(__import__("io").BytesIO(dicom_bytes(np.zeros((16, 16), np.float32), info)))
    block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert block[P.DICOM_CONDITION_ELEMENTS["class"]].value == "viral"
    assert block[P.DICOM_CONDITION_ELEMENTS["guidance"]].value == "2.5"
    assert ds.ConversionType == "SYN" and "class viral" in ds.SeriesDescription

    with pytest.raises(ValueError, match="unconditional"):
        api.generate(str(tiny_gan_ckpt), 1, tmp_path / "u", class_label="viral", progress=False)

    # a class-conditional generator (sample takes class_label / guidance) gets its class recorded everywhere
    real_load = api.load_generator
    seen = {}

    def conditional(*a, **k):
        gen = real_load(*a, **k)
        plain = gen.sample

        def sample(n, seed=0, class_label=None, guidance=None):
            seen.update(class_label=class_label, guidance=guidance)
            return plain(n, seed=seed)

        gen.sample = sample
        return gen

    monkeypatch.setattr(api, "load_generator", conditional)
    paths = api.generate(str(tiny_gan_ckpt), 2, tmp_path / "c", fmt="dcm", class_label="bacteria", guidance=3.0,
                         progress=False)
    assert seen == {"class_label": "bacteria", "guidance": 3.0}
    block = pydicom.dcmread(paths[1]).private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert block[P.DICOM_CONDITION_ELEMENTS["class"]].value == "bacteria"
    assert {(r["class"], r["guidance"]) for r in _rows(tmp_path / "c")} == {("bacteria", "3.0")}
    png = api.generate(str(tiny_gan_ckpt), 1, tmp_path / "p", class_label="bacteria", progress=False)[0]
    from generators.provenance import read_png_text

    assert json.loads(read_png_text(png)[P.PNG_KEYWORD])["class"] == "bacteria"


def test_merge_keeps_other_rows_and_replaces_same_file(tmp_path):
    merge_labels(tmp_path, [{"file": "a.png", "class": "x"}, {"file": "b.png", "class": "y"}])
    merge_labels(tmp_path, [{"file": "b.png", "class": "z", "generator": "g"}])
    assert [(r["file"], r["class"], r["generator"]) for r in _rows(tmp_path)] == [("a.png", "x", ""),
                                                                                  ("b.png", "z", "g")]


def test_training_labels_csv_gives_class_counts(tmp_path, gray_png_folder):
    from generators import ImageDataset

    labels = tmp_path / "labels.csv"
    labels.write_text("file,class\nim0.png,viral\nsub/im1.png,bacteria\nim2.png,viral\nmissing.png,viral\n")
    assert read_labels(labels)["sub/im1.png"] == "bacteria"
    ds = ImageDataset(gray_png_folder, resolution=8, labels=labels)
    assert len(ds.labels) == len(ds) == 6
    assert ds.class_counts() == {"": 3, "bacteria": 1, "viral": 2}
    assert ds.describe()["classes"] == {"": 3, "bacteria": 1, "viral": 2}

    out = tmp_path / "ck"
    res = CliRunner().invoke(main, ["train", "generator", "vae", "--data", str(gray_png_folder), "--out", str(out),
                                    "--resolution", "32", "--max-steps", "1", "--batch-size", "2",
                                    "--labels", str(labels), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "classes of 6 training images: (unlabelled): 3, bacteria: 1, viral: 2" in res.stderr
    assert json.loads((out / "config.json").read_text())["data"]["classes"]["viral"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("file,size\nim0.png,3\n")
    res = CliRunner().invoke(main, ["train", "generator", "vae", "--data", str(gray_png_folder), "--out",
                                    str(tmp_path / "ck2"), "--max-steps", "1", "--labels", str(bad)])
    assert res.exit_code == 2 and "no class column" in res.output
