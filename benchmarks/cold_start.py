"""Cold start of a single-image `medaudit scan` and `medaudit inspect`, as a ratio to `python -c "import torch"`.

    medaudit bench cold-start --repeats 3 --write-docs docs/BENCHMARKS.md

Each command runs in a fresh interpreter (what a user waits for: imports, models loaded once, one file scanned);
the median over ``repeats`` is divided by the median time of importing torch on the same machine, so the figure
travels between machines. Target (issue 14): scan <= 1.5x.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.evaluations import Recorder, Section, register_evaluation

_CLI = "import sys; from cli import main; sys.argv[0] = 'medaudit'; main()"


def _seconds(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(repeats: int = 3, size: int = 512) -> list[dict]:
    from benchmarks.scan_speed import make_inputs

    root = Path(__file__).resolve().parents[1]  # run the checkout's cli, as `medaudit` would be
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        png = make_inputs(Path(tmp), 1, "png", size)[0]
        commands = {
            "import torch": ["-c", "import torch"],
            "scan one PNG": ["-c", _CLI, "scan", "--quiet", str(png)],
            "inspect one PNG": ["-c", _CLI, "inspect", "--quiet", str(png)],
        }
        _seconds(commands["import torch"], root)  # first touch of the files on disk is not what is measured
        times = {name: [] for name in commands}
        for _ in range(repeats):  # interleaved, so load on a shared machine hits every command alike
            for name, args in commands.items():
                times[name].append(_seconds(args, root))
        base = statistics.median(times["import torch"])
        for name, values in times.items():
            median = statistics.median(values)
            rows.append({"command": name, "median_s": round(median, 2), "ratio": round(median / base, 2),
                         "repeats": repeats})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| command (fresh interpreter) | median s | ÷ import torch |", "|---|---|---|"]
    lines += [f"| {r['command']} | {r['median_s']} | {r['ratio']} |" for r in rows]
    return "\n".join(lines)


@register_evaluation("cold_start")
def evaluate_cold_start(record: Recorder, *, repeats: int = 3, size: int = 512) -> Section:
    """Seconds and the ratio to importing torch for a one-image scan and inspect in a new process."""
    rows = run(repeats, size)
    for r in rows:
        record(metric="seconds", value=r["median_s"], subset=r["command"])
        record(metric="ratio_to_import_torch", value=r["ratio"], subset=r["command"])
    return Section("cold-start", "Cold start: one image, new process", to_markdown(rows))
