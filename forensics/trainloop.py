"""One time-budgeted, seeded training loop for every network medaudit trains (CNN detector, localizer, generators).

The caller owns the model, the data and the loss; the loop owns what they share: the step and time budgets, the
learning-rate schedule, progress on stderr, periodic hooks (sample grids) and checkpoints (written by atomic rename
with :func:`save_tensors`). torch is imported lazily, so importing this module costs nothing.

Reproducibility: :func:`seed_torch` seeds parameter initialisation; batches come from the caller's own generator
(numpy or torch), drawn inside ``step`` in a fixed order. With a step budget only (no time budget) the same seed and
thread count give the same weights on one machine; a time budget makes the step count, and so the result, depend
on the machine's speed.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.atomic import atomic_path


@dataclass
class LoopResult:
    """What :func:`run` did: ``steps`` is the global step count at the end (including ``start_step``), ``wall_s``
    the seconds this call took, ``logs`` the last step's logs."""

    steps: int
    wall_s: float
    logs: dict[str, float] = field(default_factory=dict)


def seed_torch(seed: int, threads: int | None = None) -> None:
    """Seed torch's global generator (parameter initialisation, dropout) and optionally fix the thread count (CPU
    sums in another order with another count, so results repeat only with the same one)."""
    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)


def cosine_lr(optimizer: Any, base_lr: float) -> Callable[[float], None]:
    """A schedule hook for :func:`run`: cosine decay from ``base_lr`` to 0 over the budget fraction in [0, 1]."""

    def schedule(frac: float) -> None:
        for g in optimizer.param_groups:
            g["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return schedule


def optimizer_step(optimizer: Any, loss: Any) -> float:
    """Zero the gradients, back-propagate ``loss`` (a scalar tensor), step; returns the loss as a float."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.item())


def run(
    step: Callable[[int], dict[str, float]],
    *,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    start_step: int = 0,
    schedule: Callable[[float], None] | None = None,
    every: Sequence[tuple[int, Callable[[int], None]]] = (),
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every_s: float | None = None,
    progress: bool = False,
    desc: str = "training",
    postfix_every: int = 10,
) -> LoopResult:
    """Call ``step(i)`` for i = start_step, start_step + 1, ... until a budget is spent.

    Args:
        step: one optimisation step at global index ``i``: draws its batch, updates the model (e.g. with
            :func:`optimizer_step`) and returns logs (name -> float) shown on the progress bar.
        max_steps: stop when the global step count reaches this (steps restored from a checkpoint count).
        time_budget_s: stop when this many seconds of this call have passed (checked before each step).
        start_step: steps already done (a resumed run).
        schedule: called before each step with the fraction of the budget spent in [0, 1]: the larger of steps
            over ``max_steps`` and seconds over ``time_budget_s`` (e.g. :func:`cosine_lr`).
        every: ``(n, hook)`` pairs: ``hook(steps)`` after every ``n``-th step (e.g. sample grids).
        checkpoint: ``checkpoint(steps)`` whenever ``checkpoint_every_s`` seconds have passed since the last one;
            the final save is the caller's (it often writes more than the periodic one).
        progress: a tqdm bar on stderr; its postfix shows the logs every ``postfix_every`` steps.

    Raises:
        ValueError: when neither budget is given (the loop would never end).
    """
    if max_steps is None and time_budget_s is None:
        raise ValueError("training needs max_steps or time_budget_s")
    from tqdm import tqdm

    start = time.monotonic()
    last_ckpt = start
    bar = tqdm(total=max_steps, initial=start_step if max_steps is not None else 0, disable=not progress,
               file=sys.stderr, desc=desc, dynamic_ncols=True, leave=False)
    i, logs = start_step, {}
    try:
        while max_steps is None or i < max_steps:
            elapsed = time.monotonic() - start
            if time_budget_s is not None and elapsed >= time_budget_s:
                break
            if schedule is not None:
                frac = i / max_steps if max_steps else 0.0
                if time_budget_s:
                    frac = max(frac, elapsed / time_budget_s)
                schedule(min(frac, 1.0))
            logs = step(i)
            i += 1
            bar.update(1)
            if i % postfix_every == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
            for n, hook in every:
                if n and i % n == 0:
                    hook(i)
            if checkpoint is not None and checkpoint_every_s is not None \
                    and time.monotonic() - last_ckpt > checkpoint_every_s:
                checkpoint(i)
                last_ckpt = time.monotonic()
    finally:
        bar.close()
    return LoopResult(steps=i, wall_s=time.monotonic() - start, logs=logs)


def save_tensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Write torch ``tensors`` (name -> contiguous CPU tensor) as safetensors, atomically (temp file + rename), so a
    reader or a resumed run never sees half a checkpoint."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)
