"""The torch-only resnet10t is timm's network: same state-dict keys and shapes, same outputs, bundled weights load."""

from __future__ import annotations

import pytest
import torch

from forensics.analyzers.cnn.model import DEFAULT_CONFIG, build_model, load_checkpoint
from forensics.analyzers.cnn.resnet import ResNet10T
from forensics.fusion import BUNDLED_WEIGHTS


def test_matches_timm_module_for_module():
    timm = pytest.importorskip("timm")
    kw = dict(DEFAULT_CONFIG["model_kwargs"], channels=tuple(DEFAULT_CONFIG["model_kwargs"]["channels"]))
    reference = timm.create_model("resnet10t", pretrained=False, **kw).eval()
    ours = ResNet10T(**kw).eval()
    ref_state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref_state.items()}
    ours.load_state_dict(ref_state, strict=True)
    torch.manual_seed(0)
    for size in (32, 37, 128):  # odd sizes exercise the ceil-mode average-pool shortcut
        x = torch.randn(3, 1, size, size)
        with torch.no_grad():
            assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_bundled_weights_load_without_timm():
    model, config = load_checkpoint(BUNDLED_WEIGHTS / "cnn")
    assert isinstance(model, ResNet10T) and isinstance(build_model(config), ResNet10T)
