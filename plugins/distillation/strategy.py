"""The ``distillation`` step: a smaller student learns from a teacher and becomes the model.

Three ways to get the student (``params.student``):

* ``scaled`` — the teacher narrowed to ``width`` (see :mod:`.student`), trained from scratch or
  from the teacher's strongest channels;
* a ``module:function`` factory — any architecture that maps the same input to the same outputs;
* ``current`` — recovery: the model handed to this step (pruned, factorized) is fine-tuned to
  imitate the plan's original model. This is how pruning and factorization ask for distillation:
  a ``distillation`` step with ``student: current`` right after them.

torch is imported inside the methods so registering the plugin stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.plugins.distillation.params import (
    LAYERS_ONLY,
    STUDENT_CURRENT,
    STUDENT_LAYERS,
    STUDENT_SCALED,
    DistillationParams,
)
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy

if TYPE_CHECKING:
    from edgecraft.context import CompileContext, RunContext
    from edgecraft.modelio import ModelIO
    from torch import nn


def _base_dir(ctx: Any) -> Path:
    """The plan's folder, for 'file.py:function' factories (both contexts carry it)."""
    base = getattr(ctx, "base_dir", None)
    return Path(base) if base is not None else Path.cwd()


def _resolvable(reference: str, ctx: Any) -> bool:
    """Whether ``reference`` can be imported at compile time without guessing the plan's folder."""
    return not reference.partition(":")[0].endswith(".py") or getattr(ctx, "base_dir", None) is not None


def _plan_teacher(ctx: CompileContext) -> nn.Module:
    """The plan's model at compile time (a fresh build: resolve must not touch run-time state)."""
    original = getattr(ctx, "original_model", None)
    if callable(original):
        return original().module
    from edgecraft.plugins.distillation.student import build_factory_student

    factory = getattr(ctx.plan.model, "factory", None)
    if not isinstance(factory, str):
        raise LookupError("the plan's torch model is not available at compile time")
    return build_factory_student(factory, _base_dir(ctx), field="model.factory")


def _output_index(io: ModelIO | None, plan: Any) -> int:
    """Which model output distillation matches: ``plan.evaluation.output`` (default the first)."""
    if io is None or not io.outputs:
        return 0
    return io.output_index(plan.evaluation.output)


def _fingerprint(module: nn.Module) -> str:
    """Structure and initial weights of a module, hashed (what a factory's result depends on)."""
    import hashlib

    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_layer_names(module: nn.Module, names: list[str], *, role: str, param: str) -> str | None:
    known = {name for name, _ in module.named_modules() if name}
    missing = [n for n in names if n not in known]
    if not missing:
        return None
    sample = sorted(known)[:15]
    return (f"params.{param}: the {role} has no layer named {missing}; its layers include {sample}"
            f"{' ...' if len(known) > 15 else ''}")


def student_layers(n: int, layers: list[int] | None, every: int | None) -> list[int]:
    """The teacher layers a ``student: layers`` keeps: ``layers`` as given, or every ``every``-th counted
    from the end so the last layer (whose output the pooling reads) is always kept."""
    if layers is not None:
        if not layers:
            raise ValueError("an empty list would keep no encoder layer")
        bad = [i for i in layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"layer(s) {bad} out of range: the teacher has {n} encoder layers (0..{n - 1})")
        if sorted(set(layers)) != list(layers):
            raise ValueError(f"{layers} must be increasing without repeats (layers run in order)")
        if len(layers) == n:
            raise ValueError(f"{layers} keeps all {n} layers: the student would not be smaller")
        return list(layers)
    k = every or 2
    if k > n:
        raise ValueError(f"every {k} is more than the teacher's {n} encoder layers")
    return [i for i in range(n) if (n - 1 - i) % k == 0]


def _round_multiple(value: float, multiple: int | None) -> int:
    if not multiple:
        return max(1, round(value))
    return max(multiple, multiple * round(value / multiple))


class DistillationStrategy(Strategy[DistillationParams]):
    name = "distillation"
    params_model = DistillationParams
    summary = ("Knowledge distillation: train a smaller student (width-scaled, factory, or the current compressed "
               "model) on the teacher's soft targets; the student becomes the model.")

    # ------------------------------------------------------------------ compile time
    @classmethod
    def default_space(cls, params: DistillationParams) -> dict[str, dict[str, Any]]:
        """What `edgecraft search` explores for this step when the plan names no space (see space.py)."""
        from edgecraft.plugins.distillation.space import default_space

        return default_space(params)

    def resolve(self, params: DistillationParams, ctx: CompileContext) -> Resolution:
        if ctx.model_kind != "torch":
            raise ctx.error("distillation trains a torch student, but the plan's model is an ONNX file",
                            hint="give model as {kind: torch, factory: ..., input_shape: ...}")
        train = ctx.require_dataset(params.train, "distillation training", param="train")
        needs = [train]
        if params.validation is not None:
            needs.append(ctx.require_dataset(params.validation, "early stopping", param="validation"))
        if params.student == STUDENT_CURRENT and ctx.step_index == 0:
            raise ctx.error("student: current fine-tunes the model produced by earlier steps against the original, "
                            "but this is the first step: there is nothing to recover yet",
                            hint="put this step after a pruning or factorization step, or use student: scaled / "
                                 "a factory")
        misplaced = sorted(params.model_fields_set & {"width", "init", "round_to"})
        if params.student != STUDENT_SCALED and misplaced:
            raise ctx.error(f"params {misplaced} only apply to student: scaled (student is {params.student!r})")
        misplaced = sorted(params.model_fields_set & LAYERS_ONLY)
        if params.student != STUDENT_LAYERS and misplaced:
            raise ctx.error(f"params {misplaced} only apply to student: layers (student is {params.student!r})")
        for name, param in ((train, "train"), (params.validation, "validation")):
            self._check_sample_shape(ctx, name, param)
        transformer_notes = self._check_transformer(params, ctx)
        notes = transformer_notes if transformer_notes is not None else self._check_models(params, ctx)
        teacher = params.effective_teacher()
        loss = {"kl": f"kl(T={params.temperature:g})", "mse": "logit-mse", "cosine": "cosine"}[params.loss]
        student = params.student if params.student in (STUDENT_CURRENT, STUDENT_SCALED, STUDENT_LAYERS) \
            else "factory"
        implementation = f"torch-kd:{loss}:student={student}:teacher={teacher}"
        if params.features:
            implementation += f":features={len(params.features)}"
        if params.hidden_weight or params.attention_weight or params.relation_weight:
            implementation += f":hidden={params.hidden_weight:g}:attention={params.attention_weight:g}"
            if params.relation_weight:
                implementation += f":relation={params.relation_weight:g}"
        who = "the plan model before any step" if teacher == "original" else "the model as it stands before this step"
        notes.append(f"teacher = {who}; alpha={params.alpha:g} (soft loss weight; soft only without labels)")
        if params.augment == "none" and params.cache_teacher:
            notes.append("teacher outputs are computed once and reused every epoch (no augmentation)")
        return Resolution(stage=Stage.TORCH, implementation=implementation, params=params, needs_data=needs,
                          notes=notes)

    @staticmethod
    def _check_sample_shape(ctx: CompileContext, name: str | None, param: str) -> None:
        """Datasets whose params declare their sample shape (digits) have a mismatch with the model's input
        found now; every other dataset is checked when it is bound to the model's inputs at run time."""
        from edgecraft.datasets import sample_shape_of

        declared = sample_shape_of(ctx.plan.data.get(name)) if name else None
        io = ctx.model_io
        if declared is None or io is None or len(io.inputs) != 1:
            return
        try:
            expected = list(io.inputs[0].sample_shape())
        except InputError:
            return
        if declared.shape != expected:
            raise ctx.error(f"params.{param} = {name!r}: its samples have shape {declared.shape} but the model "
                            f"takes {expected} per sample (input {io.inputs[0].describe()})",
                            hint=f"set data.{name}.{declared.fields} to match the model")

    def _check_transformer(self, params: DistillationParams, ctx: CompileContext) -> list[str] | None:
        """student: layers / scaled and the per-layer losses on a transformer, checked on config.json.

        Returns None when the generic model checks apply instead (not a transformer student).
        """
        layer_losses = params.hidden_weight > 0 or params.attention_weight > 0 or params.relation_weight > 0
        source = ctx.plan.model
        is_hf = source.kind == "huggingface"
        if params.student == STUDENT_LAYERS and params.layers is not None and params.every is not None:
            raise ctx.error("params.layers and params.every both choose the student's layers; set one")
        if layer_losses and params.student not in (STUDENT_LAYERS, STUDENT_SCALED, STUDENT_CURRENT):
            raise ctx.error("params.hidden_weight / attention_weight / relation_weight pair student encoder layers "
                            "with the teacher "
                            "layers they come from; a factory student has no such pairing",
                            hint="use student: layers, scaled or current")
        if not is_hf:
            if params.student == STUDENT_LAYERS or layer_losses:
                what = "student: layers" if params.student == STUDENT_LAYERS else "the per-layer losses"
                raise ctx.error(f"{what} needs a transformer encoder (model kind huggingface, BERT family); the "
                                f"plan's model is a {getattr(source, 'kind', '?')} source")
            return None
        if params.student == STUDENT_CURRENT:
            return None
        if params.student not in (STUDENT_LAYERS, STUDENT_SCALED):
            return None
        from edgecraft.hf_common import resolve_dir
        from edgecraft.torchkit.encoder import config_supported, encoder_config

        try:
            # a huggingface source's folder (the source kind is another plugin's: read by name)
            config = encoder_config(resolve_dir(str(getattr(source, "path", "")), ctx.base_dir, field="model.path"))
        except Exception as exc:
            raise ctx.error(f"cannot read the model's config.json to build a student: {type(exc).__name__}: "
                            f"{exc}") from exc
        kind = getattr(config, "model_type", "?")
        if not config_supported(config):
            raise ctx.error(f"student: {params.student} on a transformer edits BERT-family encoders (BERT, RoBERTa, "
                            f"XLM-R, ELECTRA, MiniLM); the model is a {kind!r}",
                            hint="give a student factory ('package.module:function')")
        n = int(config.num_hidden_layers)
        if params.student == STUDENT_LAYERS:
            try:
                kept = student_layers(n, params.layers, params.every)
            except ValueError as exc:
                field = "layers" if params.layers is not None else "every"
                raise ctx.error(f"params.{field}: {exc}") from None
            imitated = _imitated(params.imitate, kept, n)
            if isinstance(imitated, str):
                raise ctx.error(f"params.imitate: {imitated}")
            return [f"student keeps encoder layers {kept} of {n}, initialised from the teacher (DistilBERT); its "
                    f"per-layer terms imitate teacher layers {imitated}"]
        heads, ffn = int(config.num_attention_heads), int(config.intermediate_size)
        keep_heads = max(1, round(params.width * heads))
        keep_ffn = _round_multiple(params.width * ffn, params.round_to)
        return [f"width {params.width:g} on a transformer: attention heads {heads} -> {keep_heads}, FFN {ffn} -> "
                f"{keep_ffn} per layer. The hidden width ({config.hidden_size}) stays: the embeddings, every "
                "residual and LayerNorm share it, so a narrower one could not start from the teacher's weights"]

    def _check_models(self, params: DistillationParams, ctx: CompileContext) -> list[str]:
        """Build the plan model (and a factory student) once to catch shape and layer-name errors now."""
        from edgecraft.plugins.distillation.student import (
            StudentError,
            build_factory_student,
            check_student_fits,
            count_params,
            probe_output,
            scale_width,
        )
        from edgecraft.torchkit.data import example_inputs

        notes: list[str] = []
        factory = params.student not in (STUDENT_CURRENT, STUDENT_SCALED)
        source_factory = getattr(ctx.plan.model, "factory", None)
        if ctx.model_io is None or (isinstance(source_factory, str) and not _resolvable(source_factory, ctx)) or (
                factory and not _resolvable(params.student, ctx)):
            notes.append("model and student checks deferred to run time: a 'file.py:function' factory needs the "
                         "plan's folder, which this compile context does not give")
            return notes
        output = _output_index(ctx.model_io, ctx.plan)
        try:
            example = example_inputs(ctx.model_io, 2)
        except InputError as exc:
            raise ctx.error(str(exc)) from exc
        try:
            teacher = _plan_teacher(ctx)
            teacher_out = probe_output(teacher, example, label="the plan's model", output=output)
            if params.student == STUDENT_SCALED:
                student = scale_width(teacher, example, params.width, init="teacher", round_to=params.round_to,
                                      label="the plan's model")
                notes.append(f"width {params.width:g} on the plan's model: {count_params(teacher)} -> "
                             f"{count_params(student)} parameters")
            elif params.student == STUDENT_CURRENT:
                student = teacher  # same architecture as far as compile time can tell
            else:
                seed = params.seed if params.seed is not None else ctx.plan.seed
                student = build_factory_student(params.student, _base_dir(ctx), field="params.student", seed=seed)
                check_student_fits(student, teacher_out, example, label=f"the student from {params.student}",
                                   output=output)
                # The fingerprint enters the compiled plan's hash, so editing the factory invalidates the cache.
                notes.append(f"student factory {params.student}: {count_params(student)} parameters vs the plan "
                             f"model's {count_params(teacher)} (fingerprint {_fingerprint(student)})")
        except StudentError as exc:
            raise ctx.error(exc.message, hint=exc.hint) from exc
        except InputError as exc:
            raise ctx.error(str(exc)) from exc
        if params.features:
            problems = [
                _check_layer_names(teacher, [p.teacher for p in params.features], role="teacher",
                                   param="features[].teacher"),
                # A current student's layers (after pruning) keep the original names, so the plan model is a fair check.
                _check_layer_names(student, [p.student for p in params.features], role="student",
                                   param="features[].student"),
            ]
            problems = [p for p in problems if p]
            if problems:
                raise ctx.error("; ".join(problems))
        return notes

    # ------------------------------------------------------------------ run time
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        from edgecraft.plugins.distillation.student import (
            build_factory_student,
            check_student_fits,
            count_params,
            probe_output,
            scale_width,
        )
        from edgecraft.plugins.distillation.train import DistillationError, distill

        params = self.params_of(step)
        if not isinstance(model, TorchModel):
            raise InputError(f"step {step.where}: distillation needs a torch model, got a {model.stage}-stage model")
        seed = params.seed if params.seed is not None else ctx.seed
        teacher_kind = params.effective_teacher()
        output = _output_index(model.io, ctx.plan)
        try:
            example = model.example_inputs(2)
            if teacher_kind == "original":
                if ctx.original_model is None:
                    raise InputError("teacher: original needs the plan's torch model, which this run does not provide")
                teacher = ctx.original_model().module
            else:
                teacher = model.module
            teacher_out = probe_output(teacher, example, label="the teacher", output=output)
            layer_map: list[int] | None = None
            kept: list[int] = []
            if params.student == STUDENT_CURRENT:
                student = model.module
            elif params.student == STUDENT_LAYERS:
                student, kept = _layer_student(model.module, params, step.where)
                layer_map = params.imitate or kept
            elif params.student == STUDENT_SCALED and _encoder(model.module) is not None:
                student = _scaled_transformer(model.module, params, seed)
            elif params.student == STUDENT_SCALED:
                student = scale_width(model.module, example, params.width, init=params.init, round_to=params.round_to,
                                      seed=seed, label="the teacher")
            else:
                student = build_factory_student(params.student, _base_dir(ctx), field="params.student", seed=seed)
            check_student_fits(student, teacher_out, example, label="the student", output=output)
            train = ctx.feeds(params.train or "")
            validation = ctx.feeds(params.validation) if params.validation else None
            result = distill(teacher, student, train, params.training(), validation=validation,
                             progress=ctx.progress, seed=seed, output=output, layer_map=layer_map)
        except InputError as exc:  # StudentError, a dataset that does not fit, ...
            raise InputError(f"step {step.where}: {exc.message}", hint=exc.hint) from exc
        except DistillationError as exc:
            raise InputError(f"step {step.where}: {exc}") from exc
        teacher_params, student_params = count_params(teacher), count_params(result.student)
        details: dict[str, Any] = {
            "teacher": teacher_kind,
            "student": params.student,
            "teacher_params": teacher_params,
            "student_params": student_params,
            "params_ratio": round(student_params / teacher_params, 4),
            "loss": params.loss,
            **result.summary(),
            "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}
                        for row in result.history],
        }
        student_encoder = _encoder(result.student)
        if student_encoder is not None:
            details["student_encoder"] = student_encoder.shape()
            if layer_map is not None:
                details["student_layers_from_teacher"] = kept
                details["student_layers_imitate"] = layer_map
        handle = model.with_module(result.student)
        handle.lineage.append({"step": step.label, "strategy": self.name, "student": params.student,
                               "teacher_params": teacher_params, "student_params": student_params})
        return StepResult(handle, details)


def _encoder(module: nn.Module) -> Any:
    from edgecraft.torchkit.encoder import find_encoder

    return find_encoder(module)


def _layer_student(teacher: nn.Module, params: DistillationParams, where: str) -> tuple[nn.Module, list[int]]:
    """A copy of the teacher keeping some encoder layers (weights and all), and which ones it kept."""
    import copy

    from edgecraft.torchkit.encoder import keep_layers, require_encoder

    student = copy.deepcopy(teacher)
    encoder = require_encoder(student, where=where, what="student: layers")
    try:
        kept = student_layers(len(encoder), params.layers, params.every)
    except ValueError as exc:
        field = "layers" if params.layers is not None else "every"
        raise InputError(f"step {where}: params.{field}: {exc}") from None
    imitated = _imitated(params.imitate, kept, len(encoder))
    if isinstance(imitated, str):
        raise InputError(f"step {where}: params.imitate: {imitated}")
    keep_layers(encoder, kept)
    return student, kept


def _imitated(imitate: list[int] | None, kept: list[int], n: int) -> list[int] | str:
    """The teacher layers the student's layers imitate (default: those they were copied from), or what is wrong."""
    if imitate is None:
        return kept
    if len(imitate) != len(kept):
        return f"{imitate} names {len(imitate)} teacher layers for a student of {len(kept)} layers ({kept})"
    bad = [i for i in imitate if not 0 <= i < n]
    return f"layer(s) {bad} out of range: the teacher has {n} encoder layers (0..{n - 1})" if bad else list(imitate)


def _scaled_transformer(teacher: nn.Module, params: DistillationParams, seed: int) -> nn.Module:
    """The teacher with ``width`` of its heads and FFN neurons per layer (largest L1 first); ``init: random``
    re-initialises the encoder layers with the model's own ``_init_weights``."""
    import copy

    import torch
    from edgecraft.torchkit import encoder as enc

    student = copy.deepcopy(teacher)
    encoder = enc.find_encoder(student)
    assert encoder is not None
    for i in range(len(encoder)):
        heads, ffn = encoder.heads(i), encoder.ffn(i)
        enc.prune_heads(encoder, i, enc.top(enc.head_scores(encoder, i, "l1"), max(1, round(params.width * heads))))
        enc.prune_ffn(encoder, i, enc.top(enc.ffn_scores(encoder, i, "l1"),
                                          min(ffn, _round_multiple(params.width * ffn, params.round_to))))
    enc.sync_config(encoder)
    if params.init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in encoder.layers.modules():
                encoder.model._init_weights(module)
    return student.train()
