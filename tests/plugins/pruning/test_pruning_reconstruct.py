"""Least-squares reconstruction after a heads/FFN cut, on a small BERT encoder built here from a config."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.huggingface

LENGTH = 12


def tiny_bert() -> Any:
    """A 2-layer BERT (4 heads of 8, FFN 64) with random weights, returning its token states (padding masked by
    the attention itself), and token inputs with padding (real lengths 4..12)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=LENGTH, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)

    class Adapter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = BertModel(config, add_pooling_layer=False)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    rng = np.random.default_rng(0)
    n = 96
    lengths = rng.integers(4, LENGTH + 1, size=n)
    ids = rng.integers(1, 50, size=(n, LENGTH)).astype(np.int64)
    mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    return Adapter().eval(), {"input_ids": ids, "attention_mask": mask}


def layer_errors(student: Any, teacher: Any, arrays: dict[str, np.ndarray]) -> list[float]:
    """Relative error of each encoder layer's output (real tokens only), the pruned model against the unpruned."""
    import torch

    outs: dict[str, list[torch.Tensor]] = {"s": [], "t": []}
    for key, model in (("s", student), ("t", teacher)):
        handles = [layer.register_forward_hook(lambda _m, _a, out, k=key: outs[k].append(out[0] if isinstance(
            out, tuple) else out)) for layer in model.model.encoder.layer]
        with torch.no_grad():
            model(torch.from_numpy(arrays["input_ids"]), torch.from_numpy(arrays["attention_mask"]))
        for h in handles:
            h.remove()
    real = torch.from_numpy(arrays["attention_mask"]).bool()
    return [float(((s[real] - t[real]) ** 2).sum() / (t[real] ** 2).sum()) for s, t in zip(outs["s"], outs["t"],
                                                                                         strict=True)]


def cut(module: Any) -> Any:
    from edgecraft.torchkit import encoder as enc

    encoder = enc.find_encoder(module)
    assert encoder is not None
    for i in range(len(encoder)):
        enc.prune_heads(encoder, i, [0, 2])
        enc.prune_ffn(encoder, i, list(range(0, 64, 2)))
    enc.sync_config(encoder)
    return encoder


@pytest.mark.parametrize("method", ["least_squares", "mask"])
def test_reconstruction_reduces_every_layers_output_error_on_held_out_tokens(method: str) -> None:
    from edgecraft.plugins.pruning.reconstruct import reconstruct
    from edgecraft.torchkit import TorchData
    from edgecraft.torchkit import encoder as enc

    teacher, arrays = tiny_bert()
    plain = copy.deepcopy(teacher)
    fitted = copy.deepcopy(teacher)
    cut(plain)
    encoder = cut(fitted)
    calibration = TorchData.from_arrays({k: v[:64] for k, v in arrays.items()})
    held_out = {k: v[64:] for k, v in arrays.items()}
    facts = reconstruct(encoder, enc.find_encoder(teacher), calibration, samples=64, method=method)
    before, after = layer_errors(plain, teacher, held_out), layer_errors(fitted, teacher, held_out)
    # Sentences the solve never saw: every layer's output is closer to the unpruned layer's (not just the fitted one);
    # one scale per head/neuron (mask) has far fewer unknowns than whole projections, so it gains less.
    factor = 0.8 if method == "least_squares" else 0.95
    assert all(a < factor * b for a, b in zip(after, before, strict=True)), (before, after)
    assert facts["tokens"] == int(arrays["attention_mask"][:64].sum())  # padding positions excluded
    errors = facts["relative_error"]
    assert set(errors) == {f"{i}.{s}" for i in range(2) for s in ("attention.output.dense", "output.dense")}
    assert all(e_after <= e_before for e_before, e_after in errors.values())
    # The kept shapes do not change: only the projections' weights do.
    assert [encoder.heads(i) for i in range(2)] == [2, 2] and [encoder.ffn(i) for i in range(2)] == [32, 32]


def test_padding_does_not_change_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 32 (most sentences padded) or of 3 (little padding) give the same weights: padding never counts."""
    import torch
    from edgecraft.plugins.pruning import reconstruct as module
    from edgecraft.torchkit import TorchData
    from edgecraft.torchkit import encoder as enc

    teacher, arrays = tiny_bert()
    data = TorchData.from_arrays({k: v[:32] for k, v in arrays.items()})
    results = []
    for batch in (32, 3):
        monkeypatch.setattr(module, "BATCH", batch)
        student = copy.deepcopy(teacher)
        encoder = cut(student)
        module.reconstruct(encoder, enc.find_encoder(teacher), data, samples=32)
        results.append(encoder.sub(1, "output.dense").weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-4)
