"""The small `medaudit bench` commands, end to end on tiny inputs, and the generated-docs sections."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from benchmarks.docs import update_section
from cli import main


def test_update_section_replaces_only_its_own_block(tmp_path):
    doc = tmp_path / "B.md"
    update_section(doc, "a", "A", "first", command="cmd a")
    update_section(doc, "b", "B", "other", command="cmd b")
    doc.write_text(doc.read_text() + "\nhand-written note\n")
    update_section(doc, "a", "A", "second", command="cmd a")
    text = doc.read_text()
    assert "second" in text and "first" not in text and "other" in text and "hand-written note" in text
    assert text.count("<!-- section:a -->") == 1 and "Machine:" in text and "`cmd a`" in text


def test_bench_scan_speed_writes_its_section(tmp_path):
    doc = tmp_path / "B.md"
    result = CliRunner().invoke(main, ["bench", "scan-speed", "-n", "3", "--size", "64", "--workers", "1",
                                       "--write-docs", str(doc)])
    assert result.exit_code == 0, result.output
    assert "| png | 64² | 3 | local | 1 | metadata |" in doc.read_text()


def test_bench_watermark_on_a_tiny_data_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cxr_kermany").mkdir()
    for i in range(3):
        img = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
        cv2.imwrite(str(tmp_path / "cxr_kermany" / f"x{i}.png"), (img / img.max() * 255).astype(np.uint8))
    result = CliRunner().invoke(main, ["bench", "watermark", "--data", str(tmp_path), "-n", "3", "--sizes", "native",
                                       "--generators", "0"])
    assert result.exit_code == 0, result.output
    assert "| cxr_kermany | native | 3 |" in result.stdout
