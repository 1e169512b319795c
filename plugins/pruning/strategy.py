"""The ``pruning`` strategy: compile-time checks (``resolve``) and the torch-stage transform (``apply``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.errors import CompileError, InputError, PluginError
from edgecraft.models import Stage, TorchModel
from edgecraft.plugins.pruning.params import HEADS_FFN_ONLY, STRUCTURED_ONLY, UNSTRUCTURED_ONLY, PruningParams
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy

if TYPE_CHECKING:
    from edgecraft.context import CompileContext, RunContext
    from edgecraft.models import ModelHandle


def _fail(ctx: CompileContext, message: str, hint: str | None = None) -> CompileError:
    return ctx.error(message, hint=hint)


def _check_ratio(ctx: CompileContext, value: float, field: str, what: str) -> None:
    if not 0 < value < 1:
        raise _fail(ctx, f"params.{field} = {value:g} is not a fraction of {what} to remove; it must satisfy "
                         f"0 < {field} < 1 (a ratio of 1 would remove every {what.rstrip('s')})")


class PruningStrategy(Strategy[PruningParams]):
    name: ClassVar[str] = "pruning"
    params_model = PruningParams
    summary: ClassVar[str] = ("Magnitude pruning: structured channel removal (Torch-Pruning; smaller, faster "
                              "model) or unstructured/N:M sparsity (torch.nn.utils.prune; only zips smaller)")

    # ------------------------------------------------------------------ compile time
    @classmethod
    def default_space(cls, params: PruningParams) -> dict[str, dict[str, Any]]:
        """What `edgecraft search` explores for this step when the plan names no space (see space.py)."""
        from edgecraft.plugins.pruning.space import default_space

        return default_space(params)

    def resolve(self, params: PruningParams, ctx: CompileContext) -> Resolution:
        if ctx.model_kind != "torch":
            raise _fail(ctx, "pruning works on the torch model (it edits layers and fine-tunes), but the plan's "
                             "model is an ONNX file", hint="give model as {kind: torch, factory: 'pkg.mod:fn', "
                                                            "input_shape: [...]}")
        given = params.model_fields_set
        if params.mode == "heads_ffn":
            return self._resolve_heads_ffn(params, ctx)
        other = (UNSTRUCTURED_ONLY if params.mode == "structured" else STRUCTURED_ONLY) | HEADS_FFN_ONLY
        wrong = sorted(given & other)
        if wrong:
            raise _fail(ctx, f"params {wrong} do not apply to mode: {params.mode}",
                        hint="remove them, or switch params.mode")
        if "max_layer_ratio" in given and params.scope != "global":
            raise _fail(ctx, "params.max_layer_ratio only applies to scope: global")
        if params.mode == "structured":
            import importlib.util

            if importlib.util.find_spec("torch_pruning") is None:
                raise _fail(ctx, "mode: structured needs Torch-Pruning, which is not installed",
                            hint="pip install 'edgecraft[pruning]' (torch-pruning>=1.6.1)")
        notes: list[str] = []
        pattern = None
        if params.pattern is not None:
            from edgecraft.plugins.pruning.unstructured import parse_pattern

            try:
                pattern = parse_pattern(params.pattern)
            except ValueError as exc:
                raise _fail(ctx, f"params.pattern: {exc}") from None
            if params.scope == "global" or params.layer_ratios:
                raise _fail(ctx, "params.pattern fixes the sparsity of every layer; scope: global and "
                                 "layer_ratios do not combine with it")
            if params.ratio is not None and abs(params.ratio - pattern.sparsity) > 1e-9:
                raise _fail(ctx, f"params.ratio = {params.ratio:g} contradicts params.pattern {pattern} "
                                 f"(sparsity {pattern.sparsity:g})", hint="leave ratio out with a pattern")
        else:
            what = "channels" if params.mode == "structured" else "weights"
            if params.ratio is None and not params.layer_ratios:
                raise _fail(ctx, f"params.ratio is required: the fraction of {what} to remove, 0 < ratio < 1")
            if params.ratio is not None:
                _check_ratio(ctx, params.ratio, "ratio", what)
            for layer, value in params.layer_ratios.items():
                if not 0 < value < 1:
                    raise _fail(ctx, f"params.layer_ratios[{layer!r}] = {value:g} for layer {layer!r} must satisfy "
                                     f"0 < ratio < 1 (1 would remove every {what.rstrip('s')} of the layer)")
        if "iterations" in given and params.schedule == "one_shot":
            raise _fail(ctx, "params.iterations only applies to schedule: gradual")
        if params.pattern is not None and params.schedule == "gradual":
            raise _fail(ctx, "an N:M pattern is applied in one shot; schedule: gradual does not apply")
        needs: list[str] = []
        if params.dataset is not None:
            needs.append(ctx.require_dataset(params.dataset, "fine-tuning", param="dataset"))
        if params.epochs > 0 and params.dataset is None:
            ctx.require_dataset(None, f"fine-tuning ({params.epochs} epochs)", param="dataset")
        if params.mode == "structured" and params.importance == "taylor" and params.dataset is None:
            ctx.require_dataset(None, "importance: taylor (gradients of the loss)", param="dataset")
        if params.schedule == "gradual" and params.epochs == 0:
            raise _fail(ctx, "schedule: gradual prunes between fine-tuning rounds, but params.epochs is 0",
                        hint="set epochs >= 1 and a training dataset, or use schedule: one_shot")
        if params.dataset is not None and params.epochs == 0 and params.importance != "taylor":
            notes.append(f"dataset {params.dataset!r} is given but epochs is 0: no fine-tuning")
        notes.extend(self._probe(params, ctx))
        if params.mode == "structured":
            impl = f"torch-pruning channels ({params.importance}, {params.scope})"
            notes.append("removes whole channels: the exported model is smaller and faster on dense runtimes")
        elif pattern is not None:
            impl = f"torch.nn.utils.prune N:M {pattern}"
            notes.append(f"{pattern} sparsity is stored densely in ONNX: same file size and speed on "
                         f"{ctx.target.label} unless its kernels exploit N:M; only the zipped size shrinks")
        else:
            impl = f"torch.nn.utils.prune L1 unstructured ({params.scope})"
            notes.append("zeros are stored densely in ONNX: the file is not smaller and dense kernels are not "
                         "faster; only the zipped size shrinks (reported)")
        return Resolution(stage=Stage.TORCH, implementation=impl, params=params, needs_data=needs, notes=notes)

    def _resolve_heads_ffn(self, params: PruningParams, ctx: CompileContext) -> Resolution:
        """mode: heads_ffn: every ratio and layer name is checked against the model's config.json now."""
        given = params.model_fields_set
        wrong = sorted(given & (UNSTRUCTURED_ONLY | {"ratio"}))
        if wrong:
            raise _fail(ctx, f"params {wrong} do not apply to mode: heads_ffn",
                        hint="set params.head_ratio and params.ffn_ratio (fractions of heads and FFN neurons)")
        if params.importance == "bn_scale":
            raise _fail(ctx, "params.importance = 'bn_scale' reads BatchNorm scales, and a transformer has none",
                        hint="use l1, l2 or taylor")
        for field in ("head_ratio", "ffn_ratio"):
            value = getattr(params, field)
            if not 0 <= value < 1:
                raise _fail(ctx, f"params.{field} = {value:g} must satisfy 0 <= {field} < 1 (1 would remove every "
                                 f"{'head' if field == 'head_ratio' else 'FFN neuron'} of a layer)")
        for layer, value in params.layer_ratios.items():
            if not 0 < value < 1:
                raise _fail(ctx, f"params.layer_ratios[{layer!r}] = {value:g} must satisfy 0 < ratio < 1")
        if params.head_ratio == 0 and params.ffn_ratio == 0 and not params.layer_ratios:
            raise _fail(ctx, "mode: heads_ffn needs params.head_ratio and/or params.ffn_ratio above 0")
        if "max_layer_ratio" in given and params.scope != "global":
            raise _fail(ctx, "params.max_layer_ratio only applies to scope: global")
        if "iterations" in given and params.schedule == "one_shot":
            raise _fail(ctx, "params.iterations only applies to schedule: gradual")
        if params.dataset is None and (params.reconstruct != "none" or "reconstruct_samples" in given):
            raise _fail(ctx, f"params.reconstruct: {params.reconstruct} re-fits the kept weights on calibration "
                             "sentences and needs params.dataset",
                        hint="name a dataset of the plan in params.dataset, or set params.reconstruct: none")
        if "round_data" in given and params.schedule == "one_shot":
            raise _fail(ctx, "params.round_data only applies to schedule: gradual (one-shot recovers once, on all "
                             "of params.dataset)")
        if params.dataset is not None:
            ctx.require_dataset(params.dataset, "recovery", param="dataset")
        if params.epochs > 0 and params.dataset is None:
            ctx.require_dataset(None, f"recovery ({params.epochs} epochs)", param="dataset")
        if params.importance == "taylor" and params.dataset is None:
            ctx.require_dataset(None, "importance: taylor (gradients of the loss)", param="dataset")
        if params.schedule == "gradual" and params.epochs == 0:
            raise _fail(ctx, "schedule: gradual prunes between recovery rounds, but params.epochs is 0")
        if params.hidden_weight and params.epochs == 0:
            raise _fail(ctx, "params.hidden_weight is a recovery loss, but params.epochs is 0")
        notes = [self._probe_encoder(params, ctx)]
        notes.append("removes whole attention heads and FFN neurons: the exported model is smaller and faster; "
                     "the Hugging Face config follows (pruned_heads, intermediate_size)")
        impl = (f"encoder heads+FFN ({params.importance}, {params.scope}; head_ratio {params.head_ratio:g}, "
                f"ffn_ratio {params.ffn_ratio:g})")
        needs = [params.dataset] if params.dataset else []
        return Resolution(stage=Stage.TORCH, implementation=impl, params=params, needs_data=needs, notes=notes)

    def _probe_encoder(self, params: PruningParams, ctx: CompileContext) -> str:
        """Check the per-layer head and FFN targets on the model's config.json (no weights loaded)."""
        from edgecraft.plugins.pruning.transformer import Shape, plan_counts

        source = ctx.plan.model
        path = getattr(source, "path", None)  # a huggingface source's folder (the source kind is another plugin)
        if source.kind != "huggingface" or not isinstance(path, str):
            return "layer-level checks run when the step is applied (not a huggingface model source)"
        from edgecraft.hf_common import resolve_dir
        from edgecraft.torchkit.encoder import config_supported, encoder_config

        try:
            config = encoder_config(resolve_dir(path, ctx.base_dir, field="model.path"))
        except Exception as exc:
            return f"layer-level checks run when the step is applied (config not readable: {type(exc).__name__})"
        if not config_supported(config):
            raise _fail(ctx, f"mode: heads_ffn edits BERT-family encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM); "
                             f"the model is a {getattr(config, 'model_type', '?')!r}",
                        hint="use mode: structured, or a BERT-family model")
        layers = int(config.num_hidden_layers)
        shape = Shape([int(config.num_attention_heads)] * layers, [int(config.intermediate_size)] * layers)
        task = getattr(source, "task", "feature-extraction")
        prefix = "model.encoder.layer" if task == "feature-extraction" else \
            f"model.{str(config.model_type).replace('-', '_')}.encoder.layer"
        try:
            heads, ffn = plan_counts(shape, params, prefix=prefix, where=ctx.where)
        except InputError as exc:
            raise CompileError(exc.message.removeprefix(f"step {ctx.where}: "), step=ctx.where,
                               target=ctx.target.label, hint=exc.hint) from None
        if params.scope == "global":
            return (f"{layers} layers x {shape.heads[0]} heads, FFN {shape.ffn[0]}: per-layer floors checked; the "
                    "global ranking is made on the weights")
        return f"{layers} layers: heads {shape.heads[0]} -> {heads}, FFN {shape.ffn[0]} -> {ffn}"

    def _probe(self, params: PruningParams, ctx: CompileContext) -> list[str]:
        """Layer-level checks on the model's structure, when it can be built cheaply at compile time.

        The model is instantiated on torch's ``meta`` device (shapes only, no memory, no weights), so
        names, channel counts and coupled groups are checked without loading or running anything.
        If that is impossible (a ``file.py`` factory, a factory that needs real tensors), the same
        checks run at the start of ``apply``, before the model is modified.
        """
        try:
            module, example = _meta_model(ctx)
        except Exception as exc:
            return [f"layer-level checks run when the step is applied (no compile-time model probe: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"]
        from edgecraft.plugins.pruning import engine

        try:
            if params.mode == "structured":
                engine.plan_structured(module, example, params, where=ctx.where)
            else:
                _check_unstructured(module, params, where=ctx.where)
        except InputError as exc:
            message = exc.message.removeprefix(f"step {ctx.where}: ")
            raise CompileError(message, step=ctx.where, target=ctx.target.label, hint=exc.hint) from None
        except Exception as exc:
            return [f"layer-level checks run when the step is applied (model probe failed: {type(exc).__name__})"]
        return ["layer names and per-layer channel targets checked on the model structure"]

    # ------------------------------------------------------------------ run time
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        import torch
        from edgecraft import torchkit
        from edgecraft.plugins.pruning import accounting, engine, rebuild

        if not isinstance(model, TorchModel):
            raise PluginError(f"step {step.where}: pruning needs a torch model, got a {model.stage}-stage model")
        params = self.params_of(step)
        where = step.where
        torch.manual_seed(ctx.seed)
        module = model.module.eval()
        example = model.example_inputs(1)
        finetuning = None
        if params.dataset is not None:
            data = torchkit.step_data(ctx, params.dataset, "dataset")

            def teacher() -> torch.nn.Module:
                if ctx.original_model is None:
                    raise InputError(f"step {where}: no unpruned model available as a teacher")
                return ctx.original_model().module

            output = model.io.output_index(ctx.plan.evaluation.output) if model.io.outputs else 0
            finetuning = engine.make_finetuning(data, teacher, epochs=params.epochs, lr=params.lr,
                                                batch_size=params.batch_size, seed=ctx.seed, progress=ctx.progress,
                                                output=output, where=where)
        if params.mode == "heads_ffn":
            return self._apply_heads_ffn(params, model, ctx, where)
        export = _export_settings(ctx)
        cost_before = torchkit.model_cost(module, example)
        params_before, macs_before = cost_before.params, cost_before.macs
        attrs_before = rebuild.layer_attrs(module)
        sizes_before = accounting.onnx_sizes(model, **export)
        ctx.progress.status(f"{where}: {params.mode} pruning")
        if params.mode == "structured":
            facts = engine.prune_structured(module, example, params, where=where, finetuning=finetuning)
        else:
            facts = engine.prune_unstructured(module, params, where=where, finetuning=finetuning)
        module.eval()
        cost_after = torchkit.model_cost(module, example)
        params_after, macs_after = cost_after.params, cost_after.macs
        sizes_after = accounting.onnx_sizes(model, **export)
        arch = rebuild.architecture(attrs_before, module)
        details: dict[str, Any] = {
            "mode": params.mode,
            **facts,
            "params_before": params_before, "params_after": params_after,
            "params_ratio": round(params_after / params_before, 6),
            "macs_before": macs_before, "macs_after": macs_after,
            "macs_ratio": round(macs_after / macs_before, 6) if macs_before > 0 else None,
            "onnx_dense_bytes_before": sizes_before["dense_bytes"], "onnx_dense_bytes": sizes_after["dense_bytes"],
            "onnx_zipped_bytes_before": sizes_before["zipped_bytes"],
            "onnx_zipped_bytes": sizes_after["zipped_bytes"],
            "finetuning": None if finetuning is None else {
                "dataset": params.dataset, "samples": len(finetuning.data), "epochs_per_round": params.epochs,
                "loss": finetuning.kind},
            "architecture": arch,
            "latency": "measured by edgecraft on the target (see the report); not assumed from sparsity",
        }
        if params.mode == "unstructured":
            details["honest_note"] = ("dense ONNX stores zeros: size and dense-kernel latency are unchanged; "
                                      "only the zipped size reflects the sparsity")
        model.lineage.append({"step": where, "strategy": self.name, "mode": params.mode, "architecture": arch,
                              "rebuild": "edgecraft.plugins.pruning.rebuild.rebuild(original_model, "
                                         "architecture, state_dict)"})
        return StepResult(model, details)


    def _apply_heads_ffn(self, params: PruningParams, model: TorchModel, ctx: RunContext, where: str) -> StepResult:
        from edgecraft import torchkit
        from edgecraft.plugins.pruning.transformer import prune_heads_ffn

        module = model.module.eval()
        example = model.example_inputs(1)
        data = torchkit.step_data(ctx, params.dataset, "dataset") if params.dataset is not None else None
        teacher = ctx.original_model().module.eval() if (data is not None and ctx.original_model) else None
        output = model.io.output_index(ctx.plan.evaluation.output) if model.io.outputs else 0
        cost_before = torchkit.model_cost(module, example)
        ctx.progress.status(f"{where}: pruning attention heads and FFN neurons")
        facts = prune_heads_ffn(module, params, where=where, data=data, teacher=teacher, output=output,
                                seed=ctx.seed, progress=ctx.progress)
        module.eval()
        cost_after = torchkit.model_cost(module, example)
        details: dict[str, Any] = {
            "mode": params.mode, **facts,
            "params_before": cost_before.params, "params_after": cost_after.params,
            "params_ratio": round(cost_after.params / cost_before.params, 6),
            "macs_before": cost_before.macs, "macs_after": cost_after.macs,
            "macs_ratio": round(cost_after.macs / cost_before.macs, 6) if cost_before.macs else None,
            "latency": "measured by edgecraft on the target (see the report); sizes too",
        }
        model.lineage.append({"step": where, "strategy": self.name, "mode": params.mode,
                              "encoder": facts["encoder_after"], "config": facts["config"]})
        return StepResult(model, details)


def _export_settings(ctx: RunContext) -> dict[str, Any]:
    """How the core exports this plan's model (the model source decides), so sizes are of that graph."""
    if ctx.source is not None:
        return ctx.source.export_options()
    source = ctx.plan.model
    return {"opset": getattr(source, "opset", 18), "exporter": getattr(source, "exporter", "dynamo")}


def _check_unstructured(module: Any, params: PruningParams, *, where: str) -> None:
    from edgecraft.plugins.pruning import engine
    from edgecraft.plugins.pruning import unstructured as un

    layers, choice = engine.unstructured_layers(module, params, where=where)
    if params.pattern:
        pattern = un.parse_pattern(params.pattern)
        for name, layer in layers:
            un.check_nm_layer(name, layer, pattern, where=where)
        return
    for name, layer in layers:
        target = choice.overrides.get(name, params.ratio if params.scope == "uniform" else None)
        total = layer.weight.numel()
        if target is not None and round(target * total) >= total:
            raise InputError(f"step {where}: sparsity {target:g} would zero every weight of layer {name!r} "
                             f"({total} weights)", hint=f"lower its ratio or add {name!r} to params.ignored_layers")


def _meta_model(ctx: CompileContext) -> tuple[Any, list[Any]]:
    """The plan's torch model built on the meta device, and example inputs (meta tensors) from its I/O."""
    import torch
    from edgecraft.loading import load_callable
    from edgecraft.torchkit.data import example_inputs

    source = ctx.plan.model
    if ctx.model_io is None:
        raise LookupError("the compile context does not give the model's I/O")
    factory_ref = getattr(source, "factory", None)
    if not isinstance(factory_ref, str):
        raise LookupError(f"a {getattr(source, 'kind', '?')} model source is probed when the step runs")
    base_dir = getattr(ctx, "base_dir", None)
    if base_dir is None and factory_ref.partition(":")[0].endswith(".py"):
        raise LookupError("a file.py factory needs the plan's folder, which the compile context does not give")
    import warnings
    from pathlib import Path

    factory = load_callable(factory_ref, Path(base_dir or "."), field="model.factory")
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # loading real weights into meta tensors is a (warned) no-op
        module = factory()
    if not isinstance(module, torch.nn.Module):
        raise TypeError("factory did not return a module")
    return module.eval(), example_inputs(ctx.model_io, 1, device="meta")
