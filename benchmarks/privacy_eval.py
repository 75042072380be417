"""``medaudit bench privacy``: how close each generator's samples come to its training images (memorization).

Per generator, at its output size, grayscale (the comparison ``generators.privacy`` makes at sampling time):

- **synthetic -> training**: each of N samples' nearest-neighbour NCC to the training split of its data folder
  (the files ``benchmarks.datafiles.is_heldout`` does not hold out);
- **real -> training** (the floor): the same for every held-out real image of that folder. A generator that copies
  sits above this distribution; one that generalises sits at or below it;
- **near copies**: samples with NCC >= 0.95 (and perceptual-hash similarity >= 0.95) to *any* file of the folder
  (the bundled models were trained on all of it, held-out files included);
- **filter**: how many of the N samples ``generate --max-similarity S --reference <folder>`` would drop, through
  the same :class:`generators.privacy.PrivacyFilter`.

References are indexed once per (folder, size, flips) and shared by the models trained on that folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation
from generators.privacy import NEAR_COPY_NCC, PrivacyFilter, ReferenceIndex

#: Figures stored per model (and per real floor) in the results store.
STORED = ("ncc_p05", "ncc_p50", "ncc_p95", "ncc_max", "near_copies", "hash_near_copies", "filter_dropped",
          "filter_dropped_share", "real_ncc_p05", "real_ncc_p50", "real_ncc_p95", "real_ncc_max",
          "real_near_copies", "samples_per_s")


def _quantiles(x: np.ndarray, prefix: str = "") -> dict[str, float]:
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {f"{prefix}ncc_p05": float(q[0]), f"{prefix}ncc_p50": float(q[1]), f"{prefix}ncc_p95": float(q[2]),
            f"{prefix}ncc_max": float(np.max(x))}


def _split_index(folder: Path, size: int, flips: bool, window: Any,
                 cache: dict[tuple, tuple[ReferenceIndex, ReferenceIndex]]) -> tuple[ReferenceIndex, ReferenceIndex]:
    """(training split, held-out split) of ``folder``, each indexed once."""
    from benchmarks.datafiles import is_heldout

    key = (str(folder), size, flips, str(window))
    if key not in cache:
        train = ReferenceIndex.build(folder, size, flips=flips, window=window, include=lambda f: not is_heldout(f))
        held = ReferenceIndex.build(folder, size, flips=flips, window=window, include=is_heldout)
        cache[key] = (train, held)
    return cache[key]


def _originals(index: ReferenceIndex) -> np.ndarray:
    """Rows of ``index`` that are the images as read (not their flipped variants)."""
    return np.array([i for i, n in enumerate(index.names) if "#" not in n], dtype=np.int64)


def measure(gen: Any, cfg: dict[str, Any], data_dir: Path, n: int, *, seed: int = 0, threshold: float = NEAR_COPY_NCC,
            cache: dict | None = None, batch: int = 64) -> dict[str, Any]:
    """Memorization figures of one loaded generator against its training folder (see the module docstring)."""
    import time

    data = cfg.get("data") or {}
    folder = data_dir / str(data.get("name"))
    if not folder.is_dir():
        raise FileNotFoundError(f"training folder {folder} (data.name of the checkpoint) not found")
    size = int(cfg.get("output_resolution") or cfg["resolution"])
    window = data.get("window", "lung")
    window = tuple(window) if isinstance(window, list) else window
    flips = bool(data.get("hflip") or data.get("vflip"))
    train, held = _split_index(folder, size, flips, window, {} if cache is None else cache)
    t0 = time.perf_counter()
    samples = np.concatenate([gen.sample(min(batch, n - s), seed=seed * 1_000_003 + s // batch)
                              for s in range(0, n, batch)])
    sps = n / max(time.perf_counter() - t0, 1e-9)
    syn = train.nearest(samples)
    real_rows = _originals(held)
    real = train.nearest(held.images[real_rows])
    full = ReferenceIndex(np.concatenate([train.images, held.images]), np.concatenate([train.hashes, held.hashes]),
                          train.names + held.names)
    filt = PrivacyFilter(full, threshold)
    kept, nn_full = filt.judge(samples)
    filt.account(nn_full)
    return {
        "data": folder.name, "size": size, "flips": flips, "n": int(n), "n_train": int(len(_originals(train))),
        "n_heldout": int(len(real_rows)), "threshold": threshold,
        **_quantiles(syn["ncc"]), **_quantiles(real["ncc"], "real_"),
        "near_copies": int((nn_full["ncc"] >= threshold).sum()),
        "hash_near_copies": int((nn_full["hash_sim"] >= threshold).sum()),
        "real_near_copies": int((real["ncc"] >= threshold).sum()),
        "filter_dropped": int(filt.dropped), "filter_dropped_share": filt.dropped / max(n, 1),
        "kept_max_ncc": filt.summary()["kept_max_ncc"], "samples_per_s": sps,
    }


def _f(v: Any, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def to_markdown(rows: list[dict[str, Any]], threshold: float) -> str:
    lines = [
        f"Memorization of each bundled generator: nearest-neighbour normalised cross-correlation (NCC) of N samples "
        f"to the training split of its data folder (files not held out by `benchmarks.datafiles.is_heldout`), "
        f"against the floor of every held-out real image of that folder to the same training split (real → train). "
        f"Both at the model's output size, grayscale, references resized and centre-cropped as in training "
        f"(flipped variants included for models trained with flips). Near copies: samples with NCC ≥ {threshold} "
        f"to any file of the folder (the bundled models were trained on all of it); hash: perceptual-hash "
        f"similarity ≥ {threshold}. Filter: samples `medaudit generate --max-similarity {threshold} --reference "
        f"<folder>` drops (NCC or hash), so none of the kept ones is a near copy by construction.",
        "",
        "| model | data | N | synthetic → train NCC p5 / p50 / p95 / max | real → train NCC p5 / p50 / p95 / max "
        "(held-out n) | near copies (NCC / hash) | real held-out near copies | filter drops | max NCC kept |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | error: {r['error']} |" + " |" * 7)
            continue
        lines.append(
            f"| {r['model']} | {r['data']} | {r['n']} "
            f"| {_f(r['ncc_p05'])} / {_f(r['ncc_p50'])} / {_f(r['ncc_p95'])} / {_f(r['ncc_max'])} "
            f"| {_f(r['real_ncc_p05'])} / {_f(r['real_ncc_p50'])} / {_f(r['real_ncc_p95'])} / {_f(r['real_ncc_max'])} "
            f"({r['n_heldout']}) | {r['near_copies']} / {r['hash_near_copies']} "
            f"| {r['real_near_copies']}/{r['n_heldout']} "
            f"| {r['filter_dropped']} ({100 * r['filter_dropped_share']:.1f}%) | {_f(r.get('kept_max_ncc'))} |"
        )
    return "\n".join(lines) + "\n"


@register_evaluation("privacy")
def evaluate_privacy(record: Recorder, *, data: Path, n: int = 200, models: tuple[str, ...] | None = None,
                     seed: int = 0, threshold: float = NEAR_COPY_NCC, threads: int | None = 1) -> Section:
    """Memorization figures of each generator (default: every bundled one) against its training folder.

    Args:
        data: folder holding the training folders named in each checkpoint's ``data.name`` (cxr_kermany/ ...).
        n: samples per model.
        threshold: near-copy NCC and the filter's ``--max-similarity``.
        threads: torch threads while sampling (1 is fastest on a busy 2-core machine).
    """
    import torch

    from generators.api import generator_config, list_bundled, load_generator

    if threads:
        torch.set_num_threads(int(threads))
    names = list(models) if models else [b["name"] for b in list_bundled()]
    cache: dict = {}
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"privacy: {name}", file=sys.stderr, flush=True)
        try:
            cfg = generator_config(name)
            row = measure(load_generator(name, device="cpu"), cfg, Path(data), n, seed=seed, threshold=threshold,
                          cache=cache)
        except (FileNotFoundError, ValueError) as e:  # one model's missing data does not stop the others
            rows.append({"model": name, "error": str(e)})
            record(kind="skip", detector=name, reason=str(e))
            continue
        row["model"] = os.path.basename(str(name))
        rows.append(row)
        record.figures({m: row.get(m) for m in STORED}, detector=row["model"], subset=row["data"],
                       n_fake=row["n"], n_real=row["n_heldout"])
    return Section("privacy", "Privacy (memorization)", to_markdown(rows, threshold))
