"""How long the reading page takes to answer: from a reader's Enter to the next image on screen, for 512² images.

    medaudit bench reader -n 50 --size 512 --write-docs docs/BENCHMARKS.md

A study of ``n`` generated images (half "real", half "synthetic": noise-textured PNGs, so the figure measures the
app, not a data set) is served on 127.0.0.1 by the same server `medaudit reader serve` runs. Two figures per image:

- HTTP: the two requests the page makes per image (the answer, whose reply names the next image; its pixels),
  timed by a client here;
- browser (when Chromium is installed): headless Chromium reading the study with keys, timed by the page itself
  from the key that submits an answer to the next image drawn (``window.readerLatencies``): the requests, decoding
  and windowing the 16-bit pixels, and drawing.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import numpy as np

from benchmarks.evaluations import Recorder, Section, cpu_seconds, register_evaluation


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def make_study(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    from benchmarks.reader.build import build_study
    from benchmarks.scan_speed import make_inputs

    real, synthetic = folder / "real", folder / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    make_inputs(real, (n + 1) // 2, "dicom", size, seed)  # 16-bit CT: the page windows these itself
    make_inputs(synthetic, n // 2, "png", size, seed + 1)
    study = folder / "bench.sqlite"
    build_study(study, {"real": real, "synthetic": synthetic}, n, seed=seed, size=size, analyzers=["metadata"],
                progress=False)
    return study


def http_latencies(port: int, token: str) -> list[tuple[float, float]]:
    """(wall, CPU) milliseconds per image for the answer (which brings the next item) + its pixels, over one
    connection. CPU counts this process: the server threads and this client together."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/r/{token}")
    resp = conn.getresponse()
    resp.read()
    cookie = resp.getheader("Set-Cookie").split(";")[0]
    conn.request("GET", "/read", headers={"Cookie": cookie})
    page = conn.getresponse().read().decode()
    csrf = json.loads(page.split('id="config"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])["csrf"]

    def get(path: str) -> bytes:
        conn.request("GET", path, headers={"Cookie": cookie, "Accept-Encoding": "gzip, deflate"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body

    item = json.loads(get("/api/item"))
    get(f"/api/pixels/{item['image']['id']}")
    out = []
    while not item["done"]:
        start = time.perf_counter()
        cpu = cpu_seconds()
        body = json.dumps({"image": item["image"]["id"], "answer": "real", "confidence": 3, "x": None, "y": None,
                           "client_ms": 1000})
        conn.request("POST", "/api/answer", body=body, headers={"Cookie": cookie, "X-CSRF-Token": csrf,
                                                                "Content-Type": "application/json"})
        r = conn.getresponse()
        reply = r.read()
        if r.status != 200:
            raise RuntimeError(f"answer refused: {r.status}")
        item = json.loads(reply)["next"]
        if not item["done"]:
            get(f"/api/pixels/{item['image']['id']}")
            out.append(((time.perf_counter() - start) * 1000, (cpu_seconds() - cpu) * 1000))
    conn.close()
    return out


def browser_latencies(url: str, token: str, n: int) -> list[float]:
    """The page's own figure: milliseconds from the Enter that submits to the next image drawn."""
    from benchmarks.reader.browser import Browser

    with Browser(width=1280, height=800, timeout=120) as b:
        b.goto(f"{url}/r/{token}")
        for position in range(n):
            b.wait_for(f"document.body.dataset.state === 'reading' && document.body.dataset.position === "
                       f"'{position}'")
            for key in ("r", "3", "Enter"):
                b.key(key)
        b.wait_for("document.body.dataset.state === 'done'")
        return [float(v) for v in b.eval("window.readerLatencies")]


def run(n: int = 50, size: int = 512, browser: bool = True) -> list[dict]:
    from benchmarks.reader.app import create_app, make_server
    from benchmarks.reader.browser import find_chromium
    from benchmarks.reader.store import Study

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        study = make_study(Path(tmp), n, size)
        with Study(study) as s:
            tokens = {how: s.add_reader(how, "blinded")[1] for how in ("http", "browser")}
        server = make_server(create_app(study), "127.0.0.1", 0, log=False)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            timed = http_latencies(server.server_port, tokens["http"])
            measured = {"http": [wall for wall, _ in timed], "http CPU": [cpu for _, cpu in timed]}
            if browser and find_chromium():
                measured["browser"] = browser_latencies(f"http://127.0.0.1:{server.server_port}", tokens["browser"], n)
        finally:
            server.shutdown()
            server.server_close()
    for how, values in measured.items():
        rows.append({"measured": how, "size": size, "images": len(values), "median_ms": round(median(values), 1),
                     "p95_ms": round(_percentile(values, 95), 1), "max_ms": round(max(values), 1)})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| measured by | image | answers timed | median ms | p95 ms | max ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['measured']} | {r['size']}² | {r['images']} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} |"
              for r in rows]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines += ["", "http: wall time of the answer (its reply names the next image) and the next pixels, over one "
              "connection; http CPU: the CPU time those two requests cost (server and client threads together). "
              "browser: headless Chromium, from the Enter that submits to the next image drawn (requests, 16-bit "
              "windowing in JavaScript, drawing); the page fetches the next image while one is read. Target: at most "
              f"100 ms per image. Load average when measured: {load}."]
    return "\n".join(lines)


@register_evaluation("reader")
def evaluate_reader(record: Recorder, *, n: int = 50, size: int = 512, browser: bool = True) -> Section:
    """Per-image answer latency of the reading page (HTTP, and in headless Chromium when installed)."""
    rows = run(n, size, browser)
    for r in rows:
        for metric in ("median_ms", "p95_ms", "max_ms"):
            record(metric=metric, value=r[metric], subset=f"{r['measured']}/{size}", n_real=r["images"])
    return Section("reader", f"Reader study page: answer latency, {size}²", to_markdown(rows))
