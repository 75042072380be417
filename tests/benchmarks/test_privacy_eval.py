"""`medaudit bench privacy` end to end on a tiny data folder made at test time."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from cli import main


def test_bench_privacy_finds_the_planted_copy_and_writes_its_section(tmp_path, monkeypatch):
    from benchmarks.datafiles import is_heldout
    from generators.api import generator_config, load_generator

    # a data folder named like cxr_gan's (config data.name) with one of cxr_gan's own samples among noise images
    folder = tmp_path / "data" / generator_config("cxr_gan")["data"]["name"]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        im = cv2.GaussianBlur(rng.random((80, 80)).astype(np.float32), (0, 0), 3.0)
        cv2.imwrite(str(folder / f"noise{i}.png"), np.round(im / im.max() * 255).astype(np.uint8))
    copy = load_generator("cxr_gan", device="cpu").sample(8, seed=0)[3]  # draw 3 of bench seed 0
    cv2.imwrite(str(folder / "copied.png"), np.round(copy * 255).astype(np.uint8))
    names = [p.name for p in folder.iterdir()]
    assert any(is_heldout(folder / n) for n in names) and not all(is_heldout(folder / n) for n in names)

    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n")
    res = CliRunner().invoke(main, ["bench", "privacy", "--data", str(tmp_path / "data"), "-n", "8",
                                    "--models", "cxr_gan,ct_gan", "--db", str(tmp_path / "r.sqlite"),
                                    "--write-docs", str(doc)])
    assert res.exit_code == 0, res.output
    text = doc.read_text()
    assert "## Privacy (memorization)" in text
    row = next(line for line in text.splitlines() if line.startswith("| cxr_gan |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "8" and cells[5].startswith("1 / ")  # one near copy among 8 samples
    assert cells[7].startswith("1 (12.5%)") and float(cells[8]) < 0.95  # the filter drops exactly it
    assert "| ct_gan | error:" in text  # its data folder is absent: reported, the run goes on
