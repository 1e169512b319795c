"""Int8 of an exported (torch-stage compressed) model, for ``benchmarks/transformer_torch.py``'s stacked rows.

Two ways: edgecraft's own quantization step run as a plan on the ONNX file (what a user's plan does after a
torch-stage step), and ONNX Runtime's ``quantize_dynamic`` per-channel (the fallback, and the fp32_int8 row).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "transformer"
SEQ = 64


def quantize_dynamic(src: Path, dst: Path) -> Path:
    """ONNX Runtime dynamic int8, per-channel (FIELD-NOTES: ~2x at cosine 0.993 on this model)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as qd
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    except Exception:
        pre = src
    qd(str(pre), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    return dst


def quantize_edgecraft(src: Path, out: Path, model_dir: str, threads: int, *,
                       max_drop: float | None = None) -> Path:
    """edgecraft's own int8 step on an exported model: a plan whose model is the ONNX file, calibrated on the
    first 64 training sentences (the automatic transformer recipe for ort-cpu, as examples/transformer/plan.yaml
    builds it). Returns the artifact's model file (a folder ORT loads).

    ``max_drop``: the plan also holds an accuracy contract (cosine to ``src``'s own outputs may drop by at most
    this), so the step's accuracy-aware loop returns the most sensitive layers to float until it holds; judged on
    256 sentences of train-large.txt, never on eval.txt (the benchmarks score there)."""
    from edgecraft.hf_common import resolve_dir
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    tokenizer = str(resolve_dir(model_dir, EXAMPLE, field="model.path"))
    text = {"kind": "text", "tokenizer": tokenizer, "max_length": SEQ}
    spec: dict = {
        "name": f"stacked-{src.stem}",
        "model": {"kind": "onnx", "path": str(src),
                  "inputs": {name: {"shape": ["batch", SEQ]} for name in ("input_ids", "token_type_ids",
                                                                          "attention_mask")}},
        "data": {"calibration": {**text, "path": "train.txt"}, "held-out": {**text, "path": "eval.txt"}},
        "evaluation": {"dataset": "held-out", "metrics": ["cosine"], "output": "sentence_embedding", "batch_size": 32},
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"calibration_dataset": "calibration", "calibration_samples": 64}}],
        "targets": ["ort-cpu"],
        "latency": {"threads": threads, "warmup": 2, "repeats": 10, "rounds": 2},
    }
    if max_drop is not None:  # judged on training text: eval.txt stays for the benchmarks' scores
        spec["data"]["held-out"] = {**text, "path": "train-large.txt", "max_samples": 256}
        spec["steps"][0]["params"]["accuracy_aware"] = {"enabled": "on", "max_evaluations": 12}
        spec["contracts"] = [{"kind": "accuracy", "metric": "cosine", "max_drop": max_drop}]
    plan = RawPlan.model_validate(spec)
    from edgecraft.backends.onnxruntime.backend import ARTIFACT_FILE

    report = run_plan(plan, build_registry(), base_dir=EXAMPLE, cache_dir=out)
    artifact = Path(report.targets[0].compressed.artifact)
    return artifact / ARTIFACT_FILE if artifact.is_dir() else artifact
