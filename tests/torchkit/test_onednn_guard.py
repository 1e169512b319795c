"""The guard around oneDNN's strided 1×1 weight gradient: it picks exactly the affected convolutions,
computes the same function and gradients as torch's reference (oneDNN off), restores the module
afterwards, and a heavily pruned ResNet (shortcut cut to 8 input channels) fine-tunes without the
crash it used to hit (run in a subprocess, so a regression is a failed test, not a dead pytest)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from edgecraft.torchkit.onednn_guard import affected_convolutions, strided_pointwise_guard
from torch import nn

REPO = Path(__file__).resolve().parents[2]


class Shortcuts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.narrow = nn.Conv2d(8, 16, 1, stride=2)                 # affected: 8 input channels, stride 2
        self.wide = nn.Conv2d(16, 16, 1, stride=2, bias=False)      # a multiple of 16: safe
        self.unit = nn.Conv2d(8, 16, 1)                              # stride 1: safe
        self.spatial = nn.Conv2d(8, 16, 3, stride=2, padding=1)      # not 1×1: safe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.narrow(x)
        same_grid = a + self.unit(x)[..., ::2, ::2] + self.spatial(x)
        return torch.cat([same_grid.flatten(1), self.wide(a).flatten(1)], dim=1)


def test_only_strided_pointwise_convolutions_with_unblocked_channels_are_rerouted() -> None:
    assert affected_convolutions(Shortcuts()) == ["narrow"]


def test_same_outputs_and_gradients_as_the_reference_and_module_restored() -> None:
    torch.manual_seed(0)
    model = Shortcuts()
    x = torch.randn(29, 8, 31, 31).contiguous(memory_format=torch.channels_last)
    with torch.backends.mkldnn.flags(enabled=False):
        reference = model(x)
        reference.square().mean().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with strided_pointwise_guard(model) as names:
        assert names == ["narrow"]
        out = model(x)
        out.square().mean().backward()
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-4, msg=name)
    assert "forward" not in model.narrow.__dict__  # the class forward is back: export sees the strided conv


@pytest.mark.slow
def test_pruned_resnet_fine_tunes_where_onednn_used_to_crash(tmp_path: Path) -> None:
    """The digits ResNet pruned by 65% (layer2's shortcut keeps 8 input channels) and fine-tuned."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(f"""\
        schema: edgecraft.plan/v1
        name: pruned-hard
        model: {{kind: torch, factory: "{REPO / 'examples/digits/model.py'}:build", input_shape: [1, 1, 32, 32]}}
        data:
          digits-train: {{kind: digits, split: train, image_size: 32}}
          digits-test: {{kind: digits, split: test, image_size: 32, max_samples: 64}}
        evaluation: {{dataset: digits-test, metrics: [top1]}}
        steps:
          - strategy: pruning
            params: {{mode: structured, ratio: 0.65, round_to: 8, dataset: digits-train, epochs: 1}}
        targets: [ort-cpu]
        contracts: [{{kind: size, min_ratio: 1.0}}]
        latency: {{repeats: 5, rounds: 1, warmup: 1, threads: 1}}
        """))
    done = subprocess.run([sys.executable, "-m", "edgecraft.cli", "run", str(plan), "--cache-dir",
                           str(tmp_path / "cache"), "--report-json", str(tmp_path / "report.json")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
