"""The one training loop: budgets, schedule, hooks, checkpoints, atomic tensor files, seeded repeatability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forensics import trainloop


def _counting_step(seen: list[int]):
    def step(i: int) -> dict[str, float]:
        seen.append(i)
        return {"loss": float(i)}

    return step


def test_stops_at_max_steps_counting_restored_steps():
    seen: list[int] = []
    res = trainloop.run(_counting_step(seen), max_steps=7, start_step=3)
    assert seen == [3, 4, 5, 6] and res.steps == 7 and res.logs == {"loss": 6.0}


def test_spent_time_budget_runs_no_step():
    seen: list[int] = []
    res = trainloop.run(_counting_step(seen), max_steps=5, time_budget_s=0.0)
    assert seen == [] and res.steps == 0 and res.logs == {}


def test_needs_a_budget():
    with pytest.raises(ValueError, match="max_steps or time_budget_s"):
        trainloop.run(_counting_step([]))


def test_schedule_sees_the_spent_fraction_and_cosine_decays():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = trainloop.cosine_lr(opt, 0.4)
    fracs, lrs = [], []

    def schedule(frac: float) -> None:
        fracs.append(frac)
        cosine(frac)
        lrs.append(opt.param_groups[0]["lr"])

    trainloop.run(_counting_step([]), max_steps=4, schedule=schedule)
    assert fracs == [0.0, 0.25, 0.5, 0.75]
    assert lrs == pytest.approx([0.4 * 0.5 * (1 + math.cos(math.pi * f)) for f in fracs])


def test_hooks_every_n_steps_and_checkpoints():
    sampled, saved = [], []
    trainloop.run(_counting_step([]), max_steps=6, every=[(2, sampled.append), (0, sampled.append)],
                  checkpoint=saved.append, checkpoint_every_s=-1.0)
    assert sampled == [2, 4, 6]
    assert saved == [1, 2, 3, 4, 5, 6]


def test_optimizer_step_updates_and_returns_the_loss():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    assert trainloop.optimizer_step(opt, (w * 2).sum()) == 2.0
    assert w.item() == pytest.approx(0.0)  # 1 - 0.5 * d(2w)/dw


def test_save_tensors_is_atomic_and_loads_back(tmp_path):
    from safetensors.torch import load_file

    path = tmp_path / "ckpt" / "weights.safetensors"
    trainloop.save_tensors(path, {"a": torch.arange(4.0)}, metadata={"k": "v"})
    trainloop.save_tensors(path, {"a": torch.arange(3.0)})
    assert torch.equal(load_file(str(path))["a"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["weights.safetensors"]  # no temp file left


def test_save_tensors_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    trainloop.save_tensors(path, {"a": torch.zeros(2)})
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - safetensors refuses non-contiguous tensors with its own error
        trainloop.save_tensors(path, {"a": torch.zeros(2, 3).t()})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]


def test_same_seed_same_weights():
    def train(seed: int) -> torch.Tensor:
        trainloop.seed_torch(seed, threads=1)
        net = torch.nn.Linear(3, 1)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        rng = np.random.default_rng(seed)

        def step(_: int) -> dict[str, float]:
            x = torch.from_numpy(rng.normal(size=(4, 3)).astype(np.float32))
            return {"loss": trainloop.optimizer_step(opt, net(x).pow(2).mean())}

        trainloop.run(step, max_steps=5, schedule=trainloop.cosine_lr(opt, 1e-2))
        return net.weight.detach().clone()

    assert torch.equal(train(0), train(0))
    assert not torch.equal(train(0), train(1))
