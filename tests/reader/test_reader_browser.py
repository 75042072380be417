"""End to end in headless Chromium: read a study with the keyboard, the server killed and restarted half way, then
the owner's results page; screenshots checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.reader.browser import Browser, find_chromium
from benchmarks.reader.store import Study

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser, pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")]


def _serve(study: Path) -> tuple[subprocess.Popen, dict]:
    cmd = [sys.executable, "-c", "import sys, cli; sys.argv[0] = 'medaudit'; cli.main()", "reader", "serve",
           str(study), "--port", "0", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"server did not start: {proc.stderr.read()}")
    return proc, json.loads(line)


def _not_blank(png: bytes, min_colours: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img.std()) > 10
    assert len(np.unique((img[::4, ::4] // 32).reshape(-1, 3), axis=0)) >= min_colours
    return img


def _keep(png: bytes, name: str) -> None:
    folder = os.environ.get("MEDAUDIT_READER_SCREENSHOTS")
    if folder:  # for a person to look at
        Path(folder, name).write_bytes(png)


def _answer_one(b: Browser, position: int) -> None:
    b.wait_for(f"document.body.dataset.state === 'reading' && document.body.dataset.position === '{position}'")
    for key in ("s", "4", "Enter"):
        b.key(key)
    b.wait_for("document.body.dataset.state === 'feedback'")
    if position == 0:
        _keep(b.screenshot(), "feedback.png")
    assert b.eval("document.getElementById('fb-truth').textContent").startswith("This image is")
    # the test images are small synthetic patterns: the modality gate may leave them unassessed, which is said
    assert b.eval("document.getElementById('fb-detector').textContent").startswith(("Detector", "Not assessed"))
    b.key("Enter")


def test_read_a_study_with_keys_across_a_server_restart(study):
    with Study(study) as s:
        token = s.add_reader("browser reader", "teaching")[1]
    server, info = _serve(study)
    try:
        with Browser(width=1200, height=800) as b:
            b.goto(f"{info['url']}/r/{token}")
            b.wait_for("document.body.dataset.state === 'reading'")
            assert b.eval("document.body.dataset.position") == "0"
            b.key("+")  # zoom, then mark a spot on the image with a click
            assert "zoom 1.3×" in b.eval("document.getElementById('status').textContent")
            b.click(400, 400)
            shot = b.screenshot()
            _keep(shot, "reading.png")
            reading = _not_blank(shot, 4)
            assert reading.shape[:2] == (800, 1200)
            for position in range(3):
                _answer_one(b, position)
            b.wait_for("document.body.dataset.position === '3' && document.body.dataset.state === 'reading'")

            server.send_signal(signal.SIGKILL)  # no shutdown: what was acknowledged must already be on disk
            server.wait(30)
            with Study(study) as s:
                assert s.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3
            server, info = _serve(study)

            b.goto(f"{info['url']}/read")  # the same browser session, a new server (and port)
            b.wait_for("document.body.dataset.state === 'reading'")
            assert b.eval("document.body.dataset.position") == "3"
            for position in range(3, 6):
                _answer_one(b, position)
            b.wait_for("document.body.dataset.state === 'done'")
            assert " of 6." in b.eval("document.getElementById('done-text').textContent")  # a score over all 6 images

            b.goto(info["owner"])
            b.wait_for("document.body.dataset.state === 'results'")
            rows = b.eval("[...document.querySelectorAll('#readers tr.reader')].map(r => r.innerText)")
            assert len(rows) == 1 and "browser reader" in rows[0] and "\t6\t" in rows[0]
            assert b.eval("document.querySelectorAll('svg.roc circle.reader-point').length") == 1
            shot = b.screenshot()
            _keep(shot, "results.png")
            _not_blank(shot, 6)
    finally:
        server.kill()
        server.wait(30)
    with Study(study) as s:
        answers = s.answers()
    assert len(answers) == 6 and all(a["answer"] == "synthetic" and a["confidence"] == 4 for a in answers)
    assert answers[0]["x"] is not None and 0 <= answers[0]["x"] <= 1  # the click was kept with the first answer
    assert all(a["client_ms"] is not None for a in answers)
