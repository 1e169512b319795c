"""Int8 on a real sentence-embedding transformer (all-MiniLM-L6-v2): edgecraft vs the tools' own recipes.

    python benchmarks/transformers.py [--json OUT] [--repeats 200] [--rounds 10] [--work DIR] [--corpus-size N]

One run, batch 1, sequence 64, 2 threads, the example's corpus (``examples/transformer/train.txt``
calibrates, ``eval.txt`` is held out and only scores). Setup, export, corpus and timing are shared
with the torch-stage benchmark through :mod:`transformer_common` (``BenchContext``).

Rows (ONNX Runtime, timed interleaved in one group): fp32; edgecraft's int8 artifact (a plan built
here and run with ``edgecraft.runner.run_plan``: the automatic transformer recipe, exactly what
``examples/transformer/plan.yaml`` ships); ``quantize_dynamic`` per-channel and per-tensor;
``quantize_static`` with its defaults. OpenVINO (its own group: thread pools must not mix): f32;
edgecraft's NNCF artifact; ``nncf.quantize(model_type=TRANSFORMER)`` and ``nncf.compress_weights``
called directly. Peers get the same exported graph, the same 64 calibration sentences and the same
session options. Cosine: mean over the 200 held-out sentences, against the fp32 model on the same
runtime.

``--json OUT`` writes the rows and the top-level figures: ``cpu_int8_features``, ``threads``,
``ort_int8_cos``, ``ort_int8_vs_dynamic_pc_latency_ratio`` (edgecraft p50 / ``quantize_dynamic
(per_channel=True)`` p50, median of per-round ratios; goal <= 1.0 at cos >= 0.995),
``ort_int8_vs_static_defaults_latency_ratio`` and ``ort_static_defaults_cos`` (for the record),
``ov_int8_cos`` and ``ov_int8_vs_nncf_transformer_latency_ratio`` (goal cos >= 0.997, ratio <= 1.05),
``wall_s``; plus whatever ``benchmarks/transformer_torch.py`` contributes (below).

Extension point for torch-stage rows: if ``benchmarks/transformer_torch.py`` exists, its
``torch_rows(ctx: BenchContext) -> dict`` is called after the int8 rows, with the shared context
(``ctx.fp32_onnx``, ``ctx.train_feeds``, ``ctx.eval_feeds``, ``ctx.eval_fp32``, ``ctx.time_onnx``...).
It returns ``{"figures": {name: value, ...}, "rows": [row, ...]}``; each row is a dict with at least
``variant`` (str) and ideally ``runtime`` ("ort"), ``p50_ms``, ``speedup_vs_fp32``, ``cos``,
``size_bytes``, ``size_ratio_vs_fp32`` (missing keys print empty; ``speedup`` and ``bytes`` are read as
``speedup_vs_fp32`` and ``size_bytes``). Figures are merged into the JSON's
top level (a name clash with this script's figures is an error); rows are appended to the table.
Timing an ONNX model there: ``ctx.time_onnx({"label": path, "fp32": ctx.fp32_onnx})`` returns p50 ms
(a list of paths gives a list) and leaves per-round samples in ``ctx.extras["last_timing"]`` for
``Timing.ratio(label, "fp32")``. ``transformer_common`` is importable by name from that module.

Longer runs (``--long``): this script stays within ~30 minutes (the recipes' default recoveries). The
levers of pruning and factorization (operating point, recovery text, objectives, iterative pruning, which
Linears) and longer recoveries are ``benchmarks/compress_levers.py``: ``sweep`` (speedup and cosine
before recovery against the kept fraction, no training), ``levers --only ... --steps S`` (equal-step
recoveries) and ``final --only ... --steps S`` (the long run: the recovered model exported and timed
against fp32 on ONNX Runtime); ``--long`` here prints that command line (``final`` with 1,250 steps on the
40,000-sentence offline corpus, about an hour on these shared cores) and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
# This file is named like the `transformers` library and Python puts a script's folder first on sys.path:
# `import transformers` anywhere (edgecraft's Hugging Face source) would import this script. Drop the
# folder from the path and load the sibling modules by file instead.
sys.path.insert(0, str(HERE))
from bench_modules import load  # noqa: E402 (this folder on the path for this import only)

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if sys.modules.get("transformers") is sys.modules.get("__main__"):
    sys.modules.pop("transformers", None)


common = load("transformer_common", HERE / "transformer_common.py")
EXAMPLE = common.EXAMPLE
MODEL_PATH = common.MODEL_PATH
SEQUENCE_LENGTH = common.SEQUENCE_LENGTH
THREADS = common.THREADS
BenchContext = common.BenchContext
build_context = common.build_context
folder_bytes = common.folder_bytes
log = common.log
samples = common.samples
CALIBRATION_SAMPLES = 64
#: The long runs of the torch-stage recipes (see the module doc): the levers' benchmark, final phase.
LONG_COMMAND = ("nice -n 5 python benchmarks/compress_levers.py final --only p-corpus,f-corpus --steps 1250 "
                "--json benchmarks/results/compress_levers.json --append")


# ---------------------------------------------------------------- edgecraft's artifacts, as the product builds them
def edgecraft_plan(cache: Path, smoke: bool = False) -> Any:
    """The example plan, built in Python (same model, data, step params, targets and accuracy contract);
    ``smoke``: 32 held-out sentences."""
    from edgecraft.plan import RawPlan

    return RawPlan.model_validate({
        "name": "minilm-int8-benchmark",
        "model": {"kind": "huggingface", "path": MODEL_PATH, "task": "feature-extraction",
                  "sequence_length": SEQUENCE_LENGTH},
        "data": {"calibration": {"kind": "text", "path": "train.txt"},
                 "held-out": {"kind": "text", "path": "eval.txt", **({"max_samples": 32} if smoke else {})}},
        "evaluation": {"dataset": "held-out", "metrics": ["cosine"], "output": "sentence_embedding",
                       "batch_size": 32},
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"calibration_dataset": "calibration", "calibration_samples": CALIBRATION_SAMPLES}}],
        "targets": ["ort-cpu", {"target": "openvino-cpu", "options": {"inference_precision": "f32"}}],
        "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.02}],
        # The plan's own latency measurement is not used here (this script times everything together).
        "latency": {"threads": THREADS, "warmup": 2, "repeats": 10, "rounds": 2},
    })


def run_edgecraft(cache: Path, smoke: bool = False) -> dict[str, Any]:
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    report = run_plan(edgecraft_plan(cache, smoke), build_registry(), base_dir=EXAMPLE, cache_dir=cache)
    return {t.target: t for t in report.targets}


# ---------------------------------------------------------------- peers: the tools called directly
class _Reader:
    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def ort_peers(ctx: BenchContext) -> dict[str, Path]:
    from onnxruntime.quantization import quantize_dynamic, quantize_static

    out: dict[str, Path] = {}
    calib = samples(ctx.train_feeds, CALIBRATION_SAMPLES)
    for label, build in (
        ("ort quantize_dynamic per-channel", lambda dst: quantize_dynamic(str(ctx.fp32_onnx), str(dst),
                                                                          per_channel=True)),
        ("ort quantize_dynamic defaults", lambda dst: quantize_dynamic(str(ctx.fp32_onnx), str(dst))),
        ("ort quantize_static defaults", lambda dst: quantize_static(str(ctx.fp32_onnx), str(dst),
                                                                     _Reader(calib))),
    ):
        dst = ctx.work / label.replace(" ", "_") / "model.onnx"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_file():
            log(f"peer: {label}")
            build(dst)
        out[label] = dst.parent
    return out


def ov_peers(ctx: BenchContext) -> dict[str, Path]:
    import nncf
    import openvino as ov

    out: dict[str, Path] = {}
    calib = samples(ctx.train_feeds, CALIBRATION_SAMPLES)
    for label, build in (
        ("ov nncf.quantize TRANSFORMER", lambda m: nncf.quantize(m, nncf.Dataset(calib), subset_size=len(calib),
                                                                 model_type=nncf.ModelType.TRANSFORMER)),
        ("ov nncf.compress_weights int8", lambda m: nncf.compress_weights(m)),
    ):
        folder = ctx.work / label.replace(" ", "_").replace(".", "_")
        if not (folder / "model.xml").is_file():
            log(f"peer: {label}")
            folder.mkdir(parents=True, exist_ok=True)
            ov.save_model(build(ov.convert_model(str(ctx.fp32_onnx))), str(folder / "model.xml"),
                          compress_to_fp16=False)
        out[label] = folder
    return out


# ---------------------------------------------------------------- the table
def _measure_runtime(ctx: BenchContext, runtime: str, variants: dict[str, Path], open_session: Any, fp32: str,
                     rows: list[dict[str, Any]], *, reference_is_fp32_variant: bool) -> tuple[dict[str, float], Any]:
    """Cosine of every variant, then their interleaved timing; appends one row per variant.

    The reference embeddings are the torch fp32 model's (``ctx.eval_fp32``), or, when
    ``reference_is_fp32_variant``, the runtime's own fp32 variant (OpenVINO: its f32 graph is the baseline).
    """
    log(f"{runtime}: cosine of {len(variants)} variants on {len(ctx.eval_fp32)} held-out sentences")
    sessions = {label: open_session(path) for label, path in variants.items()}
    reference = ctx.embed(sessions[fp32]) if reference_is_fp32_variant else None
    cos = {label: ctx.cosine(ctx.embed(s), reference) for label, s in sessions.items()}
    log(f"{runtime}: timing {len(sessions)} variants interleaved ({ctx.repeats} calls each, {ctx.rounds} rounds)")
    timing = ctx.time_sessions(sessions)
    for s in sessions.values():
        s.close()
    for label, path in variants.items():
        rows.append({"variant": label, "runtime": runtime, "p50_ms": round(timing.p50(label), 3),
                     "speedup_vs_fp32": round(1 / timing.ratio(label, fp32), 3), "cos": round(cos[label], 5),
                     "size_bytes": folder_bytes(path),
                     "size_ratio_vs_fp32": round(folder_bytes(variants[fp32]) / folder_bytes(path), 3)})
    return cos, timing


def measure(ctx: BenchContext, reports: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ort_r, ov_r = reports["ort-cpu"], reports["openvino-cpu"]
    ort_variants = {"ort fp32": Path(ort_r.baseline.artifact), "ort int8 edgecraft": Path(ort_r.compressed.artifact),
                    **ort_peers(ctx)}
    ov_variants = {"ov f32": Path(ov_r.baseline.artifact), "ov int8 edgecraft (nncf)": Path(ov_r.compressed.artifact),
                   **ov_peers(ctx)}
    rows: list[dict[str, Any]] = []
    timings: dict[str, Any] = {}

    cos, timings["ort"] = _measure_runtime(ctx, "ort", ort_variants, ctx.ort_session, "ort fp32", rows,
                                           reference_is_fp32_variant=False)
    ov_cos, timings["ov"] = _measure_runtime(ctx, "ov", ov_variants, ctx.ov_session, "ov f32", rows,
                                             reference_is_fp32_variant=True)

    ort_step = ort_r.compressed.steps[0] if ort_r.compressed.steps else {}
    ov_step = ov_r.compressed.steps[0] if ov_r.compressed.steps else {}
    t_ort, t_ov = timings["ort"], timings["ov"]
    figures = {
        "ort_int8_cos": round(cos["ort int8 edgecraft"], 5),
        "ort_int8_vs_dynamic_pc_latency_ratio": round(
            t_ort.ratio("ort int8 edgecraft", "ort quantize_dynamic per-channel"), 3),
        "ort_dynamic_pc_cos": round(cos["ort quantize_dynamic per-channel"], 5),
        "ort_int8_speedup_vs_fp32": round(1 / t_ort.ratio("ort int8 edgecraft", "ort fp32"), 3),
        "ort_int8_vs_static_defaults_latency_ratio": round(
            t_ort.ratio("ort int8 edgecraft", "ort quantize_static defaults"), 3),
        "ort_static_defaults_cos": round(cos["ort quantize_static defaults"], 5),
        "ov_int8_cos": round(ov_cos["ov int8 edgecraft (nncf)"], 5),
        "ov_int8_vs_nncf_transformer_latency_ratio": round(
            t_ov.ratio("ov int8 edgecraft (nncf)", "ov nncf.quantize TRANSFORMER"), 3),
        "ov_nncf_transformer_cos": round(ov_cos["ov nncf.quantize TRANSFORMER"], 5),
        "ov_int8_speedup_vs_f32": round(1 / t_ov.ratio("ov int8 edgecraft (nncf)", "ov f32"), 3),
        "ort_recipe": {k: ort_step.get(k) for k in ("implementation", "recipe", "smoothquant", "recipe_choice")},
        "ov_recipe": {k: ov_step.get(k) for k in ("implementation", "recipe", "model_type")},
    }
    return rows, figures


def torch_extension(ctx: BenchContext) -> dict[str, Any] | None:
    """``transformer_torch.torch_rows(ctx)`` when the other benchmark module is present (see the module doc)."""
    if not (HERE / "transformer_torch.py").is_file():
        return None
    transformer_torch = load("transformer_torch", HERE / "transformer_torch.py")

    log("torch-stage rows from benchmarks/transformer_torch.py")
    result = transformer_torch.torch_rows(ctx)
    if not isinstance(result, dict):
        raise TypeError(f"transformer_torch.torch_rows must return a dict, got {type(result).__name__}")
    return result


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["variant", "runtime", "p50_ms", "speedup_vs_fp32", "cos", "size_bytes", "size_ratio_vs_fp32"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per variant")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one); reused if given")
    parser.add_argument("--no-torch", action="store_true", help="skip benchmarks/transformer_torch.py")
    parser.add_argument("--smoke", action="store_true", help="few timed calls, 32 held-out sentences, no torch "
                        "stage (benchmarks/transformer_torch.py has its own --smoke): checks the script runs")
    parser.add_argument("--corpus-size", type=int, default=None, help="train the torch-stage recoveries on this many "
                        "lines of examples/transformer/corpus.py's offline corpus (default: train-large.txt, 4120)")
    parser.add_argument("--long", action="store_true", help="print the command of the long runs "
                        "(benchmarks/compress_levers.py final, see the module doc) and exit")
    args = parser.parse_args(argv)
    if args.long:
        print(LONG_COMMAND)
        return 0
    if args.smoke:
        args.repeats, args.rounds, args.no_torch = 20, 4, True
    from edgecraft.cpu import cpu_summary, int8_features
    from edgecraft.cpu import describe as describe_cpu

    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecraft-tbench-") as tmp:
        work = args.work or Path(tmp)
        ctx = build_context(work / "common", repeats=args.repeats, rounds=args.rounds, smoke=args.smoke,
                            corpus_size=args.corpus_size)
        log("edgecraft: run_plan on ort-cpu and openvino-cpu (automatic transformer recipe)")
        reports = run_edgecraft(work / "cache", args.smoke)
        rows, figures = measure(ctx, reports)
        extra = None if args.no_torch else torch_extension(ctx)
    if extra:
        clash = set(extra.get("figures", {})) & set(figures)
        if clash:
            raise ValueError(f"transformer_torch figures clash with this script's: {sorted(clash)}")
        figures.update(extra.get("figures", {}))
        for row in extra.get("rows", []):
            # Their rows are ORT timings of torch-stage variants; map their column names onto this table's.
            row = {"runtime": "ort (torch stage)", **row}
            row.setdefault("speedup_vs_fp32", row.get("speedup"))
            row.setdefault("size_bytes", row.get("bytes"))
            rows.append(row)
    figures = {"cpu_int8_features": int8_features(), "threads": THREADS, "batch": 1,
               "train_sentences": len(next(iter(ctx.train_feeds.values()))),
               "sequence_length": SEQUENCE_LENGTH, **figures, "wall_s": round(time.time() - start, 1)}
    print_table(rows)
    print()
    for key, value in figures.items():
        if not isinstance(value, dict):
            print(f"{key}: {value}")
    print(f"cpu: {describe_cpu()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": rows, "calibration_samples": CALIBRATION_SAMPLES,
                                         "smoke": args.smoke, "cpu": cpu_summary()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
