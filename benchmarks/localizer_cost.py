"""CPU seconds the localizer's parts take per image, on one thread (what `medaudit screen` pays per file).

    python -m benchmarks.localizer_cost --data DIR [-n 10] [--side 512]

Times, per image reduced to ``--side`` px (square crop of held-out CT slices and chest X-rays): copy-move (what
``screen`` ran before the fused localizer), the patch network, the grain model, and the whole fused ``analyze``.
Prints one JSON object (medians of CPU seconds, ``time.process_time``); the figure belongs in docs, not in tests.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import square_resize
from benchmarks.localization_data import real_images
from forensics.analyzers.localization import LocalizationAnalyzer
from forensics.analyzers.localization.copymove import copy_move
from forensics.analyzers.localization.model import net_input, to_analysis
from forensics.records import MedicalImage


def _timed(fn) -> float:
    """CPU seconds of this process (one thread): on a machine shared with other jobs, wall time would measure them."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--side", type=int, default=512)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    imgs = [square_resize(g, a.side) for m in ("ct", "xray") for g in real_images(a.data, m, True, a.n // 2, rng)]
    an = LocalizationAnalyzer(method="fused")
    net, grain = an._load(), an.grain_model
    rows: dict[str, list[float]] = {"copymove": [], "cnn": [], "grain": [], "fused_analyze": []}
    for g in imgs:
        ga = to_analysis(g)[0]
        rows["copymove"].append(_timed(lambda: copy_move(g)))  # noqa: B023 - called at once
        with torch.no_grad():
            rows["cnn"].append(_timed(lambda: net(torch.from_numpy(net_input(ga))[None])))  # noqa: B023
        rows["grain"].append(_timed(lambda: grain.anomaly(ga, "ct")))  # noqa: B023
        if an.availability()[0]:
            image = MedicalImage(pixels=g, path="x.png", sha256="0", format="png", modality="CT")
            rows["fused_analyze"].append(_timed(lambda: an.analyze(image)))  # noqa: B023
    out = {k: round(float(np.median(v)), 3) for k, v in rows.items() if v}
    out["added_by_cnn_and_grain"] = round(out["cnn"] + out["grain"], 3)
    out.update(images=len(imgs), side=a.side, threads=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
