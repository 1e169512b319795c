"""The text dataset kind: .txt and .jsonl tokenized by the model's own tokenizer, labels, and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.datasets import DatasetContext
from edgecraft.errors import InputError
from edgecraft.model_source import ModelSourceLoader
from edgecraft.plan import SourceParams
from edgecraft.plugins.datasets.text import TextKind, TextParams
from edgecraft.plugins.sources.huggingface import HuggingFaceParams, HuggingFaceSource
from hf_tiny import SENTENCES, TinyModels

pytestmark = pytest.mark.huggingface

NAMES = ["input_ids", "token_type_ids", "attention_mask"]


def hf_context(folder: Path, base_dir: Path, sequence_length: int = 16) -> DatasetContext:
    """What the runner hands a dataset kind for a plan whose model is ``folder``."""
    params = HuggingFaceParams(path=str(folder), sequence_length=sequence_length)
    loader = ModelSourceLoader(HuggingFaceSource(), params, base_dir)
    return DatasetContext(base_dir, params, loader.io)


def load(base_dir: Path, ctx: DatasetContext, **params: Any):
    return TextKind().load("sentences", TextParams(**params), ctx)


def test_txt_lines_become_int64_arrays_named_like_the_inputs(tiny: TinyModels, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("\n".join(SENTENCES[:3]) + "\n\n   \n" + SENTENCES[3] + "\n")
    data = load(tmp_path, hf_context(tiny.base, tmp_path), path="s.txt")
    assert sorted(data.arrays) == sorted(NAMES)
    for array in data.arrays.values():
        assert array.dtype == np.int64 and array.shape == (4, 16)  # blank lines skipped; max_length follows model
    assert data.y is None
    assert data.arrays["input_ids"][0, 0] == 2 and 3 in data.arrays["input_ids"][0]  # [CLS] ... [SEP]
    assert data.arrays["attention_mask"][2].sum() < 16  # short sentence padded


def test_jsonl_with_labels_binds_to_the_model(tiny: TinyModels, tmp_path: Path) -> None:
    lines = [json.dumps({"text": t, "label": i % 3}) for i, t in enumerate(SENTENCES)]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    ctx = hf_context(tiny.classifier, tmp_path)
    data = load(tmp_path, ctx, path="s.jsonl", max_samples=5)
    assert len(data) == 5 and data.y is not None and list(data.y) == [0, 1, 2, 0, 1]
    assert ctx.model_io is not None
    bound = data.bind(ctx.model_io())
    feeds = bound.feeds(slice(0, 2))
    assert sorted(feeds) == sorted(NAMES) and feeds["input_ids"].shape == (2, 16)


def test_explicit_tokenizer_and_max_length_for_a_non_hf_model(tiny: TinyModels, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("\n".join(SENTENCES) + "\n")
    ctx = DatasetContext(tmp_path, SourceParams(kind="onnx"))
    data = load(tmp_path, ctx, path="s.txt", tokenizer=str(tiny.base), max_length=8)
    assert data.arrays["input_ids"].shape == (len(SENTENCES), 8)


@pytest.mark.parametrize(("content", "params", "message"), [
    (None, {}, r"data.sentences.path: file .* does not exist"),
    ("\n  \n", {}, r"data.sentences.path: .* holds no examples"),
    ('{"text": "the model"}\n{"text": "a test",}\n', {"suffix": ".jsonl"}, r"s.jsonl line 2: not valid JSON"),
    ('{"text": "the model", "label": 1}\n{"text": "a test"}\n', {"suffix": ".jsonl"},
     r"line 2: some examples have 'label' and some do not"),
    ('{"text": "the model", "label": "cat"}\n', {"suffix": ".jsonl"}, r"line 1: 'label' = 'cat' is not an integer"),
    ('{"body": "the model"}\n', {"suffix": ".jsonl"}, r"line 1: needs a string field 'text'"),
    ("the model\n", {"max_length": 32}, r"data.sentences.max_length = 32 but the model's inputs take 16 tokens "
                                        r"\(model.sequence_length\)"),
    ("the model is a function of the data\n", {"max_length": 16, "truncation": False, "seq": 16, "long": True},
     r"line 1 has \d+ tokens, more than max_length 16"),
])
def test_errors_name_the_field_and_line(tiny: TinyModels, tmp_path: Path, content: str | None,
                                        params: dict[str, Any], message: str) -> None:
    suffix = params.pop("suffix", ".txt")
    if params.pop("long", False):
        content = " ".join([content.strip()] * 4) + "\n"  # type: ignore[union-attr]
    params.pop("seq", None)
    path = tmp_path / f"s{suffix}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        load(tmp_path, hf_context(tiny.base, tmp_path), path=path.name, **params)


def test_no_tokenizer_available_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("the model\n")
    with pytest.raises(InputError, match=r"data.sentences: no tokenizer available") as info:
        load(tmp_path, DatasetContext(tmp_path, SourceParams(kind="onnx")), path="s.txt", max_length=8)
    assert "data.sentences.tokenizer" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"data.sentences.tokenizer: no usable tokenizer in"):
        load(tmp_path, DatasetContext(tmp_path, SourceParams(kind="onnx")), path="s.txt", max_length=8,
             tokenizer="empty")
