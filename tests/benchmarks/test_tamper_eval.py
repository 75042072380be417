"""`bench tamper` end to end on a small synthetic data folder: every tamper method for CT, both classes and the
shortcut controls through the same path, the tables it writes."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from benchmarks.datasets import is_holdout
from cli import main


def _ct_like(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A dark field, a bright elliptic body with smooth structure and grain: enough for the lesion priors."""
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((xx - size / 2) / (0.42 * size)) ** 2 + ((yy - size / 2) / (0.36 * size)) ** 2 < 1
    smooth = cv2.resize(rng.random((8, 8)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.where(body, 0.45 + 0.25 * smooth, 0.02) + rng.normal(0, 0.02, (size, size))
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _data(tmp_path, held: int = 2, train: int = 2):
    folder = tmp_path / "data" / "ct_lung_tcia"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    counts = {True: 0, False: 0}
    i = 0
    while counts[True] < held or counts[False] < train:
        name = f"ChestCT_{i:04d}.png"
        side = is_holdout(name)
        if counts[side] < (held if side else train):
            cv2.imwrite(str(folder / name), _ct_like(rng))
            counts[side] += 1
        i += 1
    return tmp_path / "data"


def test_bench_tamper_reports_every_method_seen_and_unseen_and_the_controls(tmp_path):
    from generators.tamper import tamper_methods

    data = _data(tmp_path)
    doc = tmp_path / "B.md"
    result = CliRunner().invoke(main, ["bench", "tamper", "--data", str(data), "-n", "2", "--method", "noise",
                                       "--db", str(tmp_path / "r.sqlite"), "--write-docs", str(doc)])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "<!-- section:tamper -->\n## Tamper localization" in text
    for seen in ("seen", "unseen"):
        for kind in ("inject", "remove"):
            assert f"| noise | {seen} | {kind} | " in text
    for t in tamper_methods(modality="ct"):
        assert f"| ct | {t} | " in text
    assert "| noise | ct | " in text and "(2) |" in text  # each negative kind counted: 2 scans
    assert "mri" not in text.split("**Per tamper method")[1].split("`copymove`")[0]  # no MRI data: no MRI rows


def test_both_classes_and_controls_leave_through_the_same_reader(tmp_path):
    from benchmarks.tamper_eval import Scan, negatives, tampered

    rng = np.random.default_rng(1)
    scan = Scan("ct", "x", _ct_like(rng).astype(np.float32) / 255)
    neg = negatives(scan)
    assert set(neg) == {"untouched", "resized", "jpeg", "denoised"}
    assert neg["untouched"].format == "png" and neg["jpeg"].format == "jpeg"
    assert neg["resized"].pixels.shape == (102, 102)
    fake, mask, info = tampered(scan, "inject", None, rng, seed=0)
    assert fake.format == "png" and fake.bit_depth == neg["untouched"].bit_depth
    assert mask.any() and info["method"] == "inject"
    changed = np.abs(fake.pixels - neg["untouched"].pixels) > 1e-6
    assert changed.any() and not (changed & ~mask).any()  # only the lesion differs from the untouched file
