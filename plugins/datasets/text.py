"""``{kind: text, path: sentences.txt | data.jsonl}``: text tokenized by the model's own tokenizer.

A ``.txt`` file holds one example a line (blank lines skipped); a ``.jsonl`` file one JSON object a
line with a ``text`` field and an optional integer ``label``. The texts are tokenized once, padded
and truncated to a fixed length, into int64 arrays named like the tokenizer's outputs
(``input_ids``, ``attention_mask``, ``token_type_ids``), which are the names of a Hugging Face
model's inputs, so they feed it without any mapping.

The fixed length has to be the model's: edgecraft measures on concrete shapes, and 64-token samples
do not fit a ``[batch, 128]`` input. So ``max_length`` defaults to the length the model's inputs
take (a Hugging Face source's ``sequence_length``, or the plan's ``model.inputs`` shape), and a
different explicit value is an error naming both fields rather than a shape error at binding time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgecraft.datasets import Dataset, DatasetContext, DatasetKind, make_dataset
from edgecraft.errors import InputError, resolve_input_path
from edgecraft.hf_common import load_tokenizer, resolve_dir
from edgecraft.plan import DatasetParams
from pydantic import Field


class TextParams(DatasetParams):
    """Lines of text (.txt) or JSON lines with ``text`` and optional integer ``label`` (.jsonl), tokenized."""

    kind: Literal["text"] = "text"
    path: str = Field(description="A .txt file (one example a line) or .jsonl file ({\"text\": ..., \"label\": 0} "
                      "a line), relative to the plan file.")
    tokenizer: str | None = Field(None, description="A Hugging Face folder with tokenizer files (relative to the "
                                  "plan, or pkg://PACKAGE/DIR); default: the plan's huggingface model.path.")
    max_length: int | None = Field(None, ge=1, le=8192, description="Tokens per example; default: the model's "
                                   "sequence length (model.sequence_length or model.inputs). Must equal it.")
    padding: Literal["max_length"] = Field("max_length", description="Pad every example to max_length (the only "
                                           "choice: edgecraft feeds fixed shapes).")
    truncation: bool = Field(True, description="Cut longer examples at max_length; false makes a longer example "
                             "an error naming its line.")
    text_field: str = Field("text", description=".jsonl: the key holding the text.")
    label_field: str = Field("label", description=".jsonl: the key holding the optional integer label.")


def read_examples(path: Path, params: TextParams, *, where: str) -> tuple[list[str], list[int] | None, list[int]]:
    """(texts, labels or None, line numbers) from a .txt or .jsonl file; every error names the line."""
    if not path.is_file():
        raise InputError(f"{where}: file {path} does not exist", hint="paths are relative to the plan file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    texts: list[str] = []
    labels: list[int | None] = []
    numbers: list[int] = []
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not jsonl:
            texts.append(line.strip())
            numbers.append(number)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: {path.name} line {number}: not valid JSON ({exc.msg} at column "
                             f"{exc.colno})") from exc
        if not isinstance(record, dict):
            raise InputError(f"{where}: {path.name} line {number}: expected a JSON object "
                             f"{{\"{params.text_field}\": ...}}, got {type(record).__name__}")
        text = record.get(params.text_field)
        if not isinstance(text, str):
            raise InputError(f"{where}: {path.name} line {number}: needs a string field {params.text_field!r} "
                             f"(keys: {sorted(record)})")
        label = record.get(params.label_field)
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
            raise InputError(f"{where}: {path.name} line {number}: {params.label_field!r} = {label!r} is not an "
                             "integer class id")
        texts.append(text)
        labels.append(label)
        numbers.append(number)
    if not texts:
        raise InputError(f"{where}: {path} holds no examples (empty, or only blank lines)")
    labeled = [lab is not None for lab in labels]
    if labels and any(labeled) and not all(labeled):
        first = numbers[labeled.index(not labeled[0])]
        raise InputError(f"{where}: {path.name} line {first}: some examples have {params.label_field!r} and some do "
                         "not; label all of them or none")
    return texts, ([int(lab) for lab in labels if lab is not None] if labels and all(labeled) else None), numbers


def model_sequence_length(ctx: DatasetContext, input_names: list[str]) -> tuple[int | None, str]:
    """The length the model's token inputs take, and the plan field that sets it (None when unknown)."""
    model = ctx.model_params
    declared = getattr(model, "sequence_length", None) if getattr(model, "kind", None) == "huggingface" else None
    field = "model.sequence_length"
    if ctx.model_io is not None:
        try:
            io = ctx.model_io()
        except InputError:
            io = None  # the model's own problem is reported where the model is loaded
        if io is not None:
            for spec in io.inputs:
                if spec.name in input_names and spec.rank == 2 and isinstance(spec.shape[1], int):
                    if spec.shape[1] != declared:
                        field = f"model.inputs.{spec.name}.shape"
                    return spec.shape[1], field
    return (declared, field) if isinstance(declared, int) else (None, field)


class TextKind(DatasetKind[TextParams]):
    kind = "text"
    params_model = TextParams
    summary = ".txt (a line each) or .jsonl (text, optional integer label), tokenized by the model's tokenizer."

    def _tokenizer_dir(self, name: str, params: TextParams, ctx: DatasetContext) -> tuple[Path, str]:
        if params.tokenizer is not None:
            field = f"data.{name}.tokenizer"
            return resolve_dir(params.tokenizer, ctx.base_dir, field=field), field
        model = ctx.model_params
        if getattr(model, "kind", None) == "huggingface" and getattr(model, "path", None):
            return resolve_dir(model.path, ctx.base_dir, field="model.path"), "model.path"
        raise InputError(f"data.{name}: no tokenizer available: the plan's model is not a huggingface source",
                         hint=f"set data.{name}.tokenizer to a Hugging Face folder with the model's tokenizer "
                              "files (tokenizer.json or vocab.txt, tokenizer_config.json)")

    def load(self, name: str, params: TextParams, ctx: DatasetContext) -> Dataset:
        where = f"data.{name}.path"
        path = resolve_input_path(ctx.base_dir / params.path, field=f"data.{name}.path")
        texts, labels, numbers = read_examples(path, params, where=where)
        tokenizer_dir, tokenizer_field = self._tokenizer_dir(name, params, ctx)
        tokenizer = load_tokenizer(tokenizer_dir, field=tokenizer_field)
        names = list(getattr(tokenizer, "model_input_names", None) or ["input_ids", "attention_mask"])
        model_length, model_field = model_sequence_length(ctx, names)
        if params.max_length is None:
            if model_length is None:
                raise InputError(f"data.{name}.max_length is not set and the model's sequence length is not known",
                                 hint=f"set data.{name}.max_length to the token count of the model's inputs")
            length = model_length
        else:
            length = params.max_length
            if model_length is not None and length != model_length:
                raise InputError(f"data.{name}.max_length = {length} but the model's inputs take {model_length} "
                                 f"tokens ({model_field}): the samples would not fit",
                                 hint=f"omit data.{name}.max_length (it follows the model) or set both to one value")
        if not params.truncation:
            lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
            too_long = [(numbers[i], n) for i, n in enumerate(lengths) if n > length]
            if too_long:
                line, count = too_long[0]
                raise InputError(f"data.{name}: {path.name} line {line} has {count} tokens, more than max_length "
                                 f"{length} ({len(too_long)} example(s) in all), and truncation is false",
                                 hint=f"set data.{name}.truncation: true, or a larger sequence length")
        try:
            encoded: Any = tokenizer(texts, padding="max_length", truncation=params.truncation, max_length=length,
                                     return_tensors="np")
        except Exception as exc:
            raise InputError(f"data.{name}: tokenizing {path.name} with {tokenizer_dir} failed: "
                             f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        arrays = {key: np.asarray(encoded[key]).astype(np.int64) for key in names if key in encoded}
        return make_dataset(name, arrays, None if labels is None else np.asarray(labels, dtype=np.int64),
                            max_samples=params.max_samples)
