"""A small reader study (6 images: 3 real DICOMs, 2 synthetic PNGs, 1 tampered CT), made once by the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _reader_data import make_folders
from click.testing import CliRunner


@pytest.fixture(scope="session")
def one_torch_thread():
    # the detectors and the demo's generators are tiny: extra threads only spin on a busy shared machine
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def study_template(tmp_path_factory, one_torch_thread) -> Path:
    from cli import main

    root = tmp_path_factory.mktemp("reader")
    folders = make_folders(root / "inputs")
    study = root / "template.sqlite"
    result = CliRunner().invoke(main, ["reader", "new", str(study), "--real", str(folders["real"]), "--synthetic",
                                       str(folders["synthetic"]), "--tampered", str(folders["tampered"]), "-n", "6",
                                       "--seed", "1", "--size", "128", "--analyzers", "metadata,watermark,cnn", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == {"real": 3, "synthetic": 2, "tampered": 1}
    return study


@pytest.fixture
def study(study_template, tmp_path) -> Path:
    """A fresh copy of the study for each test (readers and answers are per test)."""
    path = tmp_path / "study.sqlite"
    shutil.copyfile(study_template, path)
    return path
