"""Layer-dropping distillation of all-MiniLM-L6-v2 (3 of 6 layers): what each lever of issue 28 is worth.

    python benchmarks/distill_levers.py [--variants base,cos_only,...] [--steps 250] [--corpus-size 40000]
                                        [--corpus-file FILE] [--eval-every N] [--save PT] [--load PT] [--init PT]
                                        [--data-seed S] [--step0] [--int8] [--long] [--json OUT] [--append]
                                        [--smoke]

Every variant is the distillation plugin's trainer (:func:`edgecraft.plugins.distillation.train.distill`, what
a plan's ``distillation`` step runs) with ``BASE`` changed by the variant's overrides (``VARIANTS``), trained
for the same number of optimizer steps on the same seeded sample of ``32 · steps`` sentences of the offline
corpus (``examples/transformer/corpus.py``, disjoint from eval.txt; each sentence seen once; the corpus of
``--corpus-size`` lines found in ~/.cache/edgecraft/corpus by ``corpus_data.corpus_path``, or ``--corpus-file``),
seed 0, one torch thread. So two rows differ only by their lever, and the figure is the lever's effect at that budget.

Figures per row: ``cos_step0`` (the student before training: what the layer choice alone gives), ``cos``
after training: mean cosine over eval.txt's 200 held-out sentences of the student's sentence embedding to
the teacher's (torch, fp32; the ONNX export of the same weights agrees to ~1e-6), train seconds, steps and
``load`` (the machine's 1-minute load average at the row's end: the machine is shared, so seconds are noisy).

``--step0``: the cosine before training of every choice of 3 kept layers (no training, seconds).
``--int8``: after training the (last) variant, export it to ONNX, quantize it with edgecraft's own int8 step
(the ort-cpu transformer recipe, ``transformer_int8.quantize_edgecraft``), and time the fp32 teacher, the
distilled fp32 and the distilled int8 models interleaved on ONNX Runtime (batch 1, sequence 64, 2 threads);
cosines on ORT. ``--eval-every N``: the held-out cosine every N steps during the run (the row's ``curve``:
cosine against steps from one run; a mid-run point is below what a run of that length reaches, whose learning
rate would have decayed by then). ``--save PT`` keeps the student at each checkpoint; ``--load PT`` measures a
saved student without training (a run stopped early), ``--init PT`` trains on from one (``--data-seed``: another
sample of the corpus). ``--smoke``: 64 sentences, 2 steps, two variants.

``--long`` is what about an hour buys here: the ``best`` variant (layers 0, 4, 5, lr 1e-3) for one epoch of all
169,330 corpus sentences (5,292 steps), cosine every 500 steps, then ``--int8``: 42 minutes of training on a
quiet machine (0.48 s a step, one torch thread, the other core busy) plus ~1 minute of export and timing. It
was 2,000 steps on 64,000 sentences before (the run below: 0.939); the epoch gives 0.948.

Measured (2026-12-05, 2 cores shared with 4 other jobs, load average 10-14, ``nice -n 5``, one torch thread;
rows of three runs merged into ``benchmarks/results/distill_levers.json``; table in docs/strategies.md "What
the levers are worth"):

    python benchmarks/distill_levers.py --step0 --steps 0                    # 20 layer choices, 100 s
    python benchmarks/distill_levers.py --steps 200 --variants base,layers_045,layers_035
    python benchmarks/distill_levers.py --steps 200 --variants relations,cos_only,cos_hidden
    python benchmarks/distill_levers.py --steps 800 --variants best --int8

At 200 steps (6,400 sentences): base 0.8687; 1 - cos alone 0.8665; + hidden states only 0.8701; + relations
0.8658 (objective rows tie within the 0.002-0.003 seed noise); layers 0, 3, 5 0.8789; layers 0, 4, 5 0.8997
(step 0: 0.716 against 0.495 for 1, 3, 5). On layers 0, 4, 5: imitate 1, 3, 5 0.8854; + relations 0.8962;
1 - cos alone 0.8983; lr 1e-3 0.9035. ``best`` (0, 4, 5) at 800 steps: 0.9263, 2.03x; + edgecraft int8
0.9248, 3.31x. 260-830 s per 200-step row depending on the load (1.3-4 s a step; 0.77 s on a quiet
machine). Not measured for lack of time: ``cos_attn``, ``cos_hidden_rel``, ``imitate_245``, ``lr_2e-4``,
``warmup_0.02``, ``len_32`` and seeds.

The long run (2026-12-05 05:58-06:48, 2 shared cores, load average 8-11, ``nice -n 10``, one torch thread;
``benchmarks/results/distill_levers_long.json``; what ``--long`` trained in round 2):

    python benchmarks/distill_levers.py --variants best --set '{"lr": 0.001}' --name best_lr1e-3 --steps 2000 \
        --eval-every 250 --corpus-file ~/.cache/edgecraft/corpus/corpus-169330-seed0-46f3a5bfde94.txt --int8 \
        --save /tmp/best.pt --json benchmarks/results/distill_levers_long.json

held-out cosine against steps (one run, lr 1e-3 warm-up + cosine decay over the 2,000 steps): 0 0.7158,
250 0.8780, 500 0.8897, 750 0.9042, 1000 0.9122, 1250 0.9231, 1500 0.9319, 1750 0.9376, 2000 **0.9391**
(2,803 s of training, 1.0-1.9 s a step). On ONNX Runtime, timed interleaved: distilled 0.9391 at **2.16x**
(p50 38.2 ms against the teacher's 82.7), + edgecraft int8 **0.9383 at 3.04x** (27.2 ms). Against 800 steps
(0.926), 2.5x the steps gave +0.013; the last 250 steps gave +0.0015 as the learning rate reached zero.
1,000 more steps from that student (06:47-07:10, load 7-12; ``benchmarks/results/distill_levers_continue.json``):

    python benchmarks/distill_levers.py --variants best --set '{"lr": 0.0003}' --name best_2000_plus_1000_lr3e-4 \
        --init /tmp/best.pt --data-seed 1 --steps 1000 --eval-every 250 --corpus-file <the 169,330-line corpus> \
        --int8 --json benchmarks/results/distill_levers_continue.json

(32,000 sentences of another sample, ~38 % of them seen in the first run; lr 3e-4 warm-up + cosine): 0.9391,
then 0.9281 (the re-warmed learning rate), 0.9353, 0.9409, **0.9420** at 3,000 steps in all: 2.16x, + int8
**0.9412 at 3.03x** (interleaved). +0.003 for 50 % more training, which the last round read as "0.95 is not
within reach of more steps": the runs below measured that, and it was wrong.

Round 3 (2026-12-05 09:03-10:33, the machine otherwise idle: two jobs on its two cores, one torch thread each,
``nice -n 5``; ``benchmarks/results/distill_levers_epoch.json`` has the commands). One epoch of all 169,330 corpus
sentences (``--steps 6000`` asks for more than the corpus holds: 5,292 steps), lr 1e-3::

    step     0      500    1000   1500   2000   2500   3000   3500   4000   4500   5000   5292
    cosine   0.716  0.886  0.898  0.908  0.911  0.920  0.928  0.936  0.941  0.946  0.948  0.948

42 minutes of training (0.48 s a step). ORT, interleaved, no other job running: **0.948 at 2.27x**, with
edgecraft's int8 step **0.947 at 3.98x**. Continued from the step-5,000 student on another 80,000-sentence sample
(``--init --data-seed 1``) for 2,500 steps: lr 1e-4 0.9458 (500), 0.9469, 0.9481, 0.9494, **0.9497**; lr 3e-4
0.9367, 0.9408, 0.9440, 0.9488, 0.9498 (a deeper dip on re-warming, the same end). Once more from the lr 1e-4
student (``--data-seed 2``, lr 1e-4): 0.9458, 0.9471, 0.9486, 0.9499, **0.9503** after 10,000 steps in all: on ORT
0.9503 at 1.94-2.18x (four timings of this graph or continuation 1's identical one) and with int8 **0.9495 at
3.95-4.06x** (two timings, the first quiet, the second with a plan training on the other core). The fp32 goal (0.95
at 1.8x) is reached by a hair; the int8 one (0.95 at 3x) misses by 0.0005. Gains per 2,500 steps fell from +0.002 to
+0.0006; each continuation first loses 0.004 while its learning rate warms up again. ``--int8-max-drop 0.00031``
(the int8 step's accuracy-aware loop: three layer groups back to float; the value picked after scoring 0.0005 and
0.00031 on eval.txt, so tuned on it): **0.9501**, but at 2.41x (2.55x re-timed in one group with the full int8 at
3.31x and the distilled fp32 at 2.07x): the float layers cost more speed than the 3x goal leaves. The int8 goal is
not met either way.

Round 4 (2026-12-05 12:16-12:55, a pruning run on the other core). A third continuation from the 0.9503 student,
5,000 steps this time (lr 1e-4, ``--data-seed 3``, 160,000 sentences; ``cont15000_lr1e-4`` in the JSON)::

    step     0       500     1000    1500    2000    2500    3000    3500    4000    4500    5000
    cosine   0.9503  0.9471  0.9469  0.9479  0.9482  0.9494  0.9501  0.9513  0.9516  0.9520  0.9521

**0.9521** after 15,000 steps in all, and **0.9511** with edgecraft's int8 step (full int8, the ort-cpu
transformer recipe). Re-timed with nothing else running (``compress_levers.py retime``, four groups): distilled
1.93-2.06x, int8 **3.21-3.29x**. Both goals (0.95 at 1.8x; 0.95 at 3x with int8) are met, the int8 one by
0.001. A longer continuation re-warms once for more steps at the low rate: it gained +0.0018 over 5,000 steps where
two of 2,500 gained +0.0025 from a lower start. The int8 step's SmoothQuant strength was checked on the 0.9503
student (cosine to the teacher on eval.txt, int8 loss against its fp32 0.95033): the measured choice 0.75 0.94952,
forced 0.85 0.94958, 0.95 0.9491, 0.5 0.94496: no strength closes the int8 gap alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "transformer"
BATCH = 32


sys.path.insert(0, str(HERE))
from bench_modules import load as _load  # noqa: E402 (this folder on the path for this import only)

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
tt = _load("transformer_torch", HERE / "transformer_torch.py")
scaling = _load("corpus_scaling", HERE / "corpus_scaling.py")
common = _load("transformer_common", HERE / "transformer_common.py")
corpus_data = _load("edgecraft_example_corpus_data", EXAMPLE / "corpus_data.py")
log = common.log

#: The shipped recipe before this benchmark (transformer_torch.py's ``distilled`` row, examples' distill.yaml).
BASE: dict[str, Any] = {"layers": [1, 3, 5], "imitate": None, "loss": "cosine", "hidden_weight": 1.0,
                        "attention_weight": 0.5, "relation_weight": 0.0, "lr": 4e-4, "batch_size": BATCH,
                        "schedule": "warmup_cosine", "warmup": 0.06, "max_length": None}
#: One lever per row (overrides of BASE); later rows combine the ones that helped.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "cos_only": {"hidden_weight": 0.0, "attention_weight": 0.0},
    "cos_hidden": {"attention_weight": 0.0},
    "cos_attn": {"hidden_weight": 0.0},
    "relations": {"relation_weight": 1.0},
    "cos_hidden_rel": {"attention_weight": 0.0, "relation_weight": 1.0},
    "layers_025": {"layers": [0, 2, 5]},
    "layers_035": {"layers": [0, 3, 5]},
    "layers_045": {"layers": [0, 4, 5]},
    "layers_045_imitate135": {"layers": [0, 4, 5], "imitate": [1, 3, 5]},
    "layers_045_cos_only": {"layers": [0, 4, 5], "hidden_weight": 0.0, "attention_weight": 0.0},
    "layers_025_imitate135": {"layers": [0, 2, 5], "imitate": [1, 3, 5]},
    "imitate_245": {"imitate": [2, 4, 5]},
    "lr_1e-3": {"lr": 1e-3},
    "lr_2e-4": {"lr": 2e-4},
    "warmup_0.02": {"warmup": 0.02},
    "len_32": {"max_length": 32},
}
#: The best combination of the levers that helped (what --long trains; examples/transformer/distill.yaml). The
#: 800-step row of the JSON was trained before lr 1e-3 joined it (its ``overrides`` say so).
VARIANTS["best"] = {"layers": [0, 4, 5], "lr": 1e-3}
#: --long: one epoch of the 169,330-line corpus in batches of 32 (corpus_scaling.budget_feeds takes the whole corpus
#: once when the steps ask for about as many sentences as it holds).
LONG_STEPS = 5292


def recipe(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if name not in VARIANTS and not extra:
        raise SystemExit(f"unknown variant {name!r}; known: {sorted(VARIANTS)} (or give --set JSON)")
    return {**BASE, **VARIANTS.get(name, {}), **(extra or {})}


def truncate(feeds: dict[str, np.ndarray], length: int | None) -> dict[str, np.ndarray]:
    """Training text cut to ``length`` tokens (the last kept token becomes [SEP]); eval text is not cut."""
    if not length:
        return feeds
    out = {k: v[:, :length].copy() for k, v in feeds.items()}
    lengths = feeds["attention_mask"].sum(axis=1)
    shortest = int(np.argmin(lengths))  # an untruncated sentence: its last token is the tokenizer's [SEP]
    sep = feeds["input_ids"][shortest, lengths[shortest] - 1]
    full = out["attention_mask"][:, -1] == 1  # sentences cut here end with [SEP], as the tokenizer would end them
    out["input_ids"][full, -1] = sep
    return out


class Checkpoints:
    """A :class:`~edgecraft.progress.Progress` that measures the student every ``every`` optimizer steps.

    The SDK loop asks its progress for the next batch after each optimizer step, so the step count is known
    there without touching the loop: one training run gives held-out cosine against steps (eval.txt, 200
    sentences: ~2 % of 250 steps' time). ``save``: the student's weights at each checkpoint (the last one kept),
    so a run stopped early can still be exported.
    """

    def __init__(self, ctx: Any, handle: Any, student: Any, every: int, save: Path | None = None) -> None:
        self.ctx, self.handle, self.student, self.every, self.save = ctx, handle, student, every, save
        self.curve: list[dict[str, Any]] = []
        self.step = 0
        self.started = time.perf_counter()

    def measure(self) -> None:
        import torch

        modes = {m: m.training for m in self.student.modules()}
        point = {"step": self.step, "cos": tt._torch_cos(self.ctx, self.handle, self.student),
                 "seconds": round(time.perf_counter() - self.started, 1), "load": round(os.getloadavg()[0], 2)}
        for m, mode in modes.items():
            m.train(mode)
        self.curve.append(point)
        log(f"checkpoint {json.dumps(point)}")
        if self.save is not None:
            self.save.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"step": self.step, "state": self.student.state_dict()}, self.save)

    def track(self, items: Any, *, total: int | None = None, description: str = "") -> Any:
        for item in items:
            yield item
            self.step += 1  # resumed: the step on ``item`` is done
            if self.step % self.every == 0:
                self.measure()
            elif self.step in (10, 50):
                log(f"step {self.step}: {time.perf_counter() - self.started:.1f} s")

    def status(self, message: str) -> None:
        return None


def train_variant(handle: Any, teacher: Any, ctx: Any, feeds: dict[str, np.ndarray], r: dict[str, Any],
                  steps: int, *, eval_every: int = 0, save: Path | None = None,
                  load: Path | None = None, init: Path | None = None,
                  data_seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """``load``: no training, the student's weights from a ``--save`` checkpoint (a run stopped early);
    ``init``: training starts from such a checkpoint (a second run continuing a first, on a ``data_seed`` sample)."""
    import torch
    from edgecraft.plugins.distillation.params import DistillationParams, TrainingParams
    from edgecraft.plugins.distillation.strategy import _layer_student
    from edgecraft.plugins.distillation.train import distill

    student, kept = _layer_student(handle.module, DistillationParams(student="layers", layers=r["layers"],
                                                                     train="t"), "bench")
    cos0 = tt._torch_cos(ctx, handle, student)
    if load is not None:
        saved = torch.load(load, weights_only=True)
        student.load_state_dict(saved["state"])
        return student, {"layers": kept, "cos_step0": cos0, "steps": int(saved["step"]), "loaded": str(load)}
    facts: dict[str, Any] = {"layers": kept, "cos_step0": cos0}
    if init is not None:
        saved = torch.load(init, weights_only=True)
        student.load_state_dict(saved["state"])
        cos0 = tt._torch_cos(ctx, handle, student)
        facts.update(init=str(init), init_steps=int(saved["step"]), cos_init=cos0, data_seed=data_seed)
    rows, epochs, n_steps = scaling.budget_feeds(feeds, steps=steps, epochs=None, seed=data_seed) if steps else \
        (feeds, 0, 0)
    facts["steps"] = n_steps
    if not steps:
        return student, facts
    data = tt._data(handle, truncate(rows, r["max_length"]))
    params = TrainingParams(loss=r["loss"], hidden_weight=r["hidden_weight"], attention_weight=r["attention_weight"],
                            relation_weight=r["relation_weight"], epochs=epochs, batch_size=r["batch_size"],
                            lr=r["lr"], optimizer="adamw", schedule=r["schedule"], warmup=r["warmup"],
                            weight_decay=0.01, validation_fraction=0, patience=None, seed=0,
                            freeze=["*embeddings.*"])
    checkpoints = Checkpoints(ctx, handle, student, eval_every, save) if eval_every else None
    started = time.perf_counter()
    result = distill(teacher, student, data, params, layer_map=r["imitate"] or kept, progress=checkpoints)
    if checkpoints is not None and checkpoints.step % eval_every:
        checkpoints.measure()  # the run's end (an epoch's last batch off the grid): on the curve and saved
    facts.update(train_seconds=round(time.perf_counter() - started, 1), distinct_sentences=len(data),
                 final_loss=round(result.history[-1]["train_loss"] or 0.0, 4))
    if checkpoints is not None:
        facts["curve"] = [{"step": 0, "cos": cos0}, *checkpoints.curve]
    return student, facts


def measure_int8(handle: Any, student: Any, ctx: Any, work: Path, max_drop: float | None = None) -> dict[str, Any]:
    """fp32 teacher vs distilled fp32 vs distilled int8 on ONNX Runtime, timed interleaved (``max_drop``: the int8
    step's accuracy-aware loop keeps layers float until int8 is that close to the distilled fp32 model)."""
    work.mkdir(parents=True, exist_ok=True)
    fp32 = tt.export(handle, handle.module, work / "fp32.onnx")
    distilled = tt.export(handle, student, work / "distilled.onnx")
    int8 = tt.quantize_edgecraft(distilled, work / "distilled-int8", tt.MODEL, 2, max_drop=max_drop)
    local = tt.LocalContext(tt.MODEL, fp32, {}, ctx.eval_feeds, tt.embed(fp32, ctx.eval_feeds), work=work,
                            rounds=ctx.rounds, repeats=ctx.repeats)
    p50 = local.time_onnx([fp32, distilled, int8])
    out = {"p50_ms": {"fp32": round(p50[0], 3), "distilled": round(p50[1], 3), "distilled_int8": round(p50[2], 3)},
           "distilled_speedup": round(p50[0] / p50[1], 3), "distilled_int8_speedup": round(p50[0] / p50[2], 3),
           "distilled_cos_ort": round(tt.mean_cosine(tt.embed(distilled, ctx.eval_feeds), local.eval_fp32), 5),
           "distilled_int8_cos_ort": round(tt.mean_cosine(tt.embed(int8, ctx.eval_feeds), local.eval_fp32), 5),
           "int8": "edgecraft quantization step (ort-cpu transformer recipe)"
                   + (f", accuracy-aware to a cosine drop <= {max_drop} from the distilled model" if max_drop else "")}
    log(f"int8 {json.dumps(out)}")
    return out


def write(path: Path, rows: list[dict[str, Any]], earlier: dict[str, Any], extra: dict[str, Any], *,
          smoke: bool) -> None:
    from edgecraft.cpu import cpu_summary, int8_features

    done = {(r["variant"], r["steps"]) for r in rows}
    table = [r for r in earlier.get("table", []) if (r["variant"], r["steps"]) not in done] + rows
    result = {**{k: v for k, v in earlier.items() if k != "table"}, **extra, "table": table, "base": BASE,
              "smoke": smoke, "cpu_int8_features": int8_features(), "cpu": cpu_summary()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="base", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--set", default="", help="JSON overrides applied to every variant (e.g. a combination)")
    parser.add_argument("--name", default="", help="row name when --set is given")
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps per variant (0: step 0 only)")
    parser.add_argument("--corpus-size", type=int, default=40000)
    parser.add_argument("--corpus-file", type=Path, help="a corpus already built (one sentence a line; e.g. "
                        "~/.cache/edgecraft/corpus/corpus-169330-*.txt): used as is, --corpus-size ignored")
    parser.add_argument("--eval-every", type=int, default=0, help="held-out cosine every N steps (a curve per row)")
    parser.add_argument("--save", type=Path, help="the student's weights at each checkpoint (with --eval-every)")
    parser.add_argument("--load", type=Path, help="no training: the student from a --save file (then e.g. --int8)")
    parser.add_argument("--init", type=Path, help="train on from a --save file (a second run after a first)")
    parser.add_argument("--data-seed", type=int, default=0, help="which sample of the corpus the steps read")
    parser.add_argument("--step0", action="store_true", help="cosine before training of every 3-of-6 layer choice")
    parser.add_argument("--int8", action="store_true", help="export, int8-quantize and time the last variant")
    parser.add_argument("--long", action="store_true", help="the best recipe for one epoch of the 169,330-sentence "
                        "corpus (5,292 steps), cosine every 500 steps, then --int8 (about 45 minutes on a quiet "
                        "machine)")
    parser.add_argument("--int8-max-drop", type=float, help="with --int8: the int8 step's accuracy-aware loop "
                        "returns layers to float until int8's cosine to the distilled model drops by at most this "
                        "(judged on train-large.txt, not eval.txt)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--append", action="store_true", help="keep --json's rows (same variant and steps: replaced)")
    parser.add_argument("--smoke", action="store_true", help="64 sentences, 2 steps, two variants (a test runs it)")
    args = parser.parse_args(argv)
    import torch

    if args.long:
        args.variants, args.steps, args.corpus_size, args.int8 = "best", LONG_STEPS, 169330, True
        args.eval_every = args.eval_every or 500
    if args.int8_max_drop is not None and (not args.int8 or not 0 < args.int8_max_drop < 1):
        raise SystemExit(f"--int8-max-drop {args.int8_max_drop}: a cosine drop in (0, 1), with --int8")
    if args.corpus_file is not None and not args.corpus_file.is_file():
        raise SystemExit(f"--corpus-file: {args.corpus_file} is not a file (the corpus tool writes them to "
                         f"{scaling.corpus.cache_dir()})")
    names = [n for n in args.variants.split(",") if n]
    extra = json.loads(args.set) if args.set else {}
    if args.smoke:
        names, args.steps = ["base", "relations"], 2
    start = time.time()
    torch.manual_seed(0)
    handle = tt._load_handle()
    teacher = tt._load_handle().module.eval()
    eval_feeds = tt._feeds(handle, EXAMPLE / "eval.txt")
    if args.smoke:
        eval_feeds = {k: v[:16] for k, v in eval_feeds.items()}
    with torch.no_grad():
        reference = teacher(*[torch.from_numpy(eval_feeds[n]) for n in handle.io.input_names])
    ctx = tt.LocalContext(tt.MODEL, Path(), {}, eval_feeds, np.asarray(reference), rounds=2 if args.smoke else 7,
                          repeats=5 if args.smoke else 30)
    earlier = json.loads(args.json.read_text()) if args.json and args.append and args.json.is_file() else {}
    extras: dict[str, Any] = {}
    torch.set_num_threads(1)
    if args.step0 or args.smoke:
        from itertools import combinations

        choices = [list(c) for c in combinations(range(6), 3)] if not args.smoke else [[1, 3, 5], [0, 2, 5]]
        step0 = {}
        for layers in choices:
            _, facts = train_variant(handle, teacher, ctx, {}, {**BASE, "layers": layers}, 0)
            step0[",".join(map(str, layers))] = facts["cos_step0"]
        extras["step0_by_layers"] = dict(sorted(step0.items(), key=lambda kv: -kv[1]))
        log(f"step0 {json.dumps(extras['step0_by_layers'])}")
    if args.smoke:
        feeds = {k: v[:64] for k, v in tt._feeds(handle, EXAMPLE / "train-large.txt").items()}
    elif args.load is not None:
        feeds = {}  # no training
    else:
        feeds = tt._feeds(handle, args.corpus_file or corpus_data.corpus_path(args.corpus_size))
        args.corpus_size = len(next(iter(feeds.values())))
        log(f"corpus: {args.corpus_size} sentences")
    rows: list[dict[str, Any]] = []
    student = None
    for name in names if args.steps or not args.step0 else []:
        r = recipe(name, extra)
        label = args.name or name
        log(f"variant {label}: {json.dumps({k: v for k, v in r.items() if BASE.get(k) != v})}")
        student, facts = train_variant(handle, teacher, ctx, feeds, r, args.steps,
                                       eval_every=2 if args.smoke else args.eval_every, save=args.save,
                                       load=args.load, init=args.init, data_seed=args.data_seed)
        row = {"variant": label, "overrides": {k: v for k, v in r.items() if BASE.get(k) != v},
               "corpus_size": args.corpus_size if not args.smoke else 64, **facts,
               "cos": tt._torch_cos(ctx, handle, student), "load": round(os.getloadavg()[0], 2)}
        log(f"row {json.dumps(row)}")
        rows.append(row)
        if args.json:
            write(args.json, rows, earlier, extras, smoke=args.smoke)
    if args.int8 and student is not None:
        extras["int8"] = {"variant": rows[-1]["variant"], "steps": rows[-1]["steps"],
                          **measure_int8(handle, student, ctx, ctx.work, args.int8_max_drop)}
    extras["wall_s"] = round(time.time() - start, 1)
    if args.json:
        write(args.json, rows, earlier, extras, smoke=args.smoke)
    print(f"{'variant':<24}{'steps':>6}{'cos@0':>8}{'cos':>8}{'train s':>9}{'load':>6}")
    for row in rows:
        print(f"{row['variant']:<24}{row['steps']:>6}{row['cos_step0']:>8.4f}{row['cos']:>8.4f}"
              f"{row.get('train_seconds', 0):>9.1f}{row['load']:>6.2f}")
    for row in rows:
        for point in row.get("curve", []):
            print(f"{row['variant']:<24}step {point['step']:>5}  cos {point['cos']:.4f}"
                  f"{'  ' + str(point.get('seconds', '')) + ' s' if 'seconds' in point else ''}")
    for layers, cos in extras.get("step0_by_layers", {}).items():
        print(f"step 0, layers {layers:<10}{cos:>8.4f}")
    if "int8" in extras:
        print(json.dumps(extras["int8"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
