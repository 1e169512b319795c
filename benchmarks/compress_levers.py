"""Levers of heads/FFN pruning and low-rank factorization of all-MiniLM-L6-v2 (issue 28), one table.

    python benchmarks/compress_levers.py sweep  [--json OUT] [--append]        # speedup vs kept fraction
    python benchmarks/compress_levers.py levers --only NAME,... --steps S [--json OUT] [--append]
    python benchmarks/compress_levers.py final  --only NAME,... --steps S [--json OUT] [--append]
    python benchmarks/compress_levers.py refit  --only f-NAME,... [--calibration N] [--json OUT] [--append]
    python benchmarks/compress_levers.py retime --graph NAME=MODEL.onnx ... [--json OUT] [--append]
    python benchmarks/compress_levers.py --smoke --json OUT                   # the test suite's run

Four phases write rows into one JSON (``--append`` keeps the rows already there; a row of the same
``phase`` and ``name`` is replaced), so a table measured in several runs on a shared machine stays one file, and
a fifth re-times what they exported:

* **sweep** (no training): each pruning ratio and factorization target is applied to MiniLM without
  recovery (Taylor importance on 4 batches / activation-aware SVD with greedy sensitivity ranks), exported
  with edgecraft's Hugging Face source, and timed on ONNX Runtime CPU **interleaved with the fp32 model in
  one group** (edgecraft's ``InterleavedTimer``, batch 1, sequence 64, 2 threads: the plans' latency
  settings); speedup is the median of per-round p50 ratios. Cosine before recovery is the ONNX model's on
  eval.txt. This finds the least compression that still gives the goals' 1.3x.
* **levers** (equal-step recoveries at one operating point): each named lever is a recovery of ``--steps``
  optimizer steps (batch 32) through the plugins' own code paths, exactly what the plans run
  (``prune_heads_ffn`` with its recovery; ``factorize_model`` then ``recovery.distill_from``). The step
  budget is ``corpus_scaling.budget_feeds``'s: a corpus of N >= 32·S sentences gives one epoch over a seeded
  sample of 32·S of them; a smaller one is repeated for round(32·S/N) epochs. Cosine on eval.txt is computed
  in torch (the ONNX export of the same weights agrees to ~1e-6), against the teacher's torch embeddings.
* **final**: like levers, but the recovered model is exported and timed against fp32 on ORT, and its
  cosine is the ONNX model's: the figures the plans' gates judge.
* **retime** (no training): exported graphs (``--graph NAME=PATH``, e.g. a final row's
  ``WORK/models/final-p-long.onnx``) timed again interleaved with fp32 in one group, and scored on eval.txt;
  the group is appended to the JSON's ``quiet_retime.groups``. A row's own speedup is timed in the run that
  trained it, under whatever load the machine had then; on 2026-12-05 every graph timed 0.1-0.3 slower
  relative to fp32 on an idle machine than under load 7-12, so the speedups to quote come from this phase run
  with nothing else on the machine.

Levers (``LEVERS``): pruning ``p-base`` (train-large.txt, 4,120 sentences; cosine + every layer's hidden
state, one shot), ``p-corpus`` (the offline corpus of examples/transformer/corpus.py instead), ``p-nohidden``
(output cosine only), ``p-iter2`` (two rounds, recovery between them, each round on half the text:
``round_data: split``, equal total steps); factorization ``f-base`` (all 36 encoder Linears),
``f-corpus``, ``f-ffn`` (FFN Linears only, attention left whole), ``f-nohidden``. ``--prune-point`` and
``--factor-point`` set the operating point (pruning head/FFN ratios; factorization's kept fraction of the
encoder Linears' params). ``--corpus-file`` names an offline corpus already made (corpus.py rebuilds its pool,
many minutes, whenever the installed packages changed). Training runs on one torch thread (see
``transformer_torch.Settings``); run long phases under ``nice``. ``--smoke``: one sweep point per strategy, two
recovery steps on 64 sentences, 16 scored, and the refit phase's ``f-seqfit`` on one Linear (a test runs it).

Factorization levers of round 2: ``f-long`` (``f-corpus`` for a long run), and the whitening levers, each from the
``f-base`` ranks (one-shot whitening on 128 sentences) refitted on ``--calibration`` training sentences: ``f-seq``
(sequential whitening), ``f-seqfit`` (sequential with the least-squares refit), ``f-cal`` (one-shot whitening on
more sentences); the **refit** phase scores them (and ``f-corpus``, the one-shot start) without recovery.

Pruning levers of round 2: ``p-ls`` (``p-corpus`` with the cut re-fitted by least squares before recovery:
``reconstruct: least_squares``), ``p-mask`` (one scale per kept head/neuron instead: ``reconstruct: mask``),
``p-long`` (``p-corpus`` for a long run); the **refit** phase scores a pruning lever's cut (and re-fit) without
recovery, Taylor scores and calibration from the lever's first 512 training sentences.

Measured (2026-12-05, 2 shared cores, load average 6-14 from four other helpers' jobs, every run ``nice -n 5``;
rows of nine background runs merged into ``benchmarks/results/compress_levers.json``; one seed each, seed noise
0.002-0.003 from earlier runs). Cosine: mean over eval.txt's 200 held-out sentences against fp32 MiniLM.
Speedup: p50 on ORT, batch 1, sequence 64, 2 threads, interleaved with fp32 in the same run.

=====================================================  =======  ============  ==========  =======
row                                                    kept     cos before    cos after   speedup
=====================================================  =======  ============  ==========  =======
sweep: prune heads 12->8, FFN ->768 (the old recipe)   0.556    0.692         --          1.61x
sweep: prune heads 12, FFN ->768                       0.667    0.771         --          1.38x
sweep: prune heads ->10, FFN ->960                     0.695    0.787         --          1.34x
sweep: prune heads ->9, FFN ->1152                     0.750    0.830         --          1.28x
sweep: factorize all 36 encoder Linears                0.650    0.898         --          1.32x
sweep: factorize the 12 FFN Linears only               0.649    0.863         --          1.36x
prune heads ->9, FFN ->960: 100 steps, train-large     0.667    (0.797 tr.)   0.9041      --
  same, output cosine only (no hidden-state term)      0.667                  0.9026      --
  same, 2 rounds with recovery between (split text)    0.667                  0.8895      --
  same, 100 steps on the 40k offline corpus            0.667                  0.9147      --
  final: 200 steps on the 40k offline corpus           0.667                  0.9233      1.43x
  refit: cut only, Taylor on 512 corpus sentences      0.667    0.767         --          --
  refit: same, least-squares re-fit (p-ls)             0.667    0.848         --          --
  refit: same, one scale per head/neuron (p-mask)       0.667    0.772         --          --
  final: least squares, then 200 steps (40k corpus)     0.667                  0.9085      (0.54x, a)
  final: 1,000 steps on the 40k corpus (p-long)         0.667                  0.9537      1.55x
prune heads ->10, FFN ->960: 200 steps, 40k corpus     0.695    (0.816 tr.)   0.9410      1.37x
factorize all at 0.65: 90 steps, train-large           0.650    0.898         0.9262      --
  FFN Linears only at the same params                  0.649    0.863         0.9045      --
  same as first, 90 steps on the 40k offline corpus    0.650    0.898         0.9281      --
  final: 135 steps on the 40k offline corpus           0.650    0.898         0.9342      1.32x
  refit: sequential whitening, 128 sentences          0.650    0.8992        --          --
  refit: one-shot whitening on 512 sentences (f-cal)   0.650    0.9118        --          --
  f-cal, 90 steps on the 40k offline corpus            0.650    0.9118        0.9316      --
  final: 360 steps on the 40k offline corpus (f-long)  0.650    0.898         0.9476      1.40x
  final: f-cal, 450 steps on the 40k offline corpus   0.650    0.9118        0.9528      1.16x (*)
=====================================================  =======  ============  ==========  =======

(a: timed while the gate-cost benchmark ran busy loops pinned to a core: the p-ls model has p-corpus's exact
shapes, 1.43x on a less loaded machine.) Least squares (plugins/pruning/reconstruct.py; Kwon et al. 2022's
layer-wise reconstruction, whole projections) lifts the held-out cosine of the cut model by 0.08 (0.767 ->
0.848; on the 256 calibration sentences and the next 256, 0.781 -> 0.942: it fits the calibration text much
better than held-out text), but after the same 200 recovery steps it is 0.015 *worse* than recovery from the
plain cut (0.908 vs 0.923; 0.947 vs 0.935 on training sentences): the re-fitted projections suit the corpus's
sentences, and recovery does not undo it in 200 steps. One scale per kept head/neuron (Kwon's mask tuning,
far fewer unknowns) barely moves anything (+0.005). So ``reconstruct`` defaults to ``none``. What pays is the
length of recovery: 1,000 steps (32,000 distinct corpus sentences, one epoch) reach 0.954 against 0.923 after 200
(63 minutes of training at load 7-11, one torch thread; 0.957 on training sentences: little overfitting). The
point matters as much: keeping 10 heads instead of 9 (FFN 960 both; 1.34x against 1.43x in the sweep) gives 0.941
against 0.923 after the same 200 steps (a rerun of the 9-head row gave 0.92333 again: the runs are deterministic).
(kept: pruning, of the encoder's params; factorization, of the encoder Linears'. "0.797 tr.": the plugin's figure on
the first 512 recovery sentences.) What helps: the operating point (1.3x needs far less compression than the old
recipes: cosine before recovery 0.79 (pruning) and 0.90 (factorization) at 1.34x/1.32x instead of 0.69 at 1.61x and
0.835 at 1.52x, the latter from benchmarks/transformers.py) and more steps; the offline corpus's text at equal steps
and equal distinct sentences (3,200 seen either way: more varied text, not more of it) +0.011 for pruning (its
Taylor scores come from that text too) and +0.002 (noise) for factorization. What does not, at 100 steps: the
hidden-state term (+0.0015, within noise), iterative pruning at equal steps (-0.015: each round's recovery gets half
the steps, and the second cut undoes part of the first recovery: 0.957 -> 0.908 on training sentences), factorizing
only the FFN Linears (-0.022, although 3% faster). Neither goal's cosine (0.97, 0.98) is reached; train seconds in
the JSON are not comparable between rows (the machine's load changed between runs).

Factorization, round 2 (same machine, load average 8-12, every run ``nice -n 10``, one torch thread; the refit
rows start from the one-shot model's ranks and change only the factors). More recovery steps still pay: 0.934 after
135 steps, 0.948 after 360 (``f-long``, 27 minutes of training here); the factorized model itself is unchanged, so
its speed is the same (1.32x-1.40x between runs). Whitening each layer on the inputs the factorized layers before
it produce (``whitening: sequential``) changes little: 0.898 -> 0.899 before recovery. What does pay is
calibrating the whitening on more sentences: 512 instead of 128 (``calibration_samples``) gives 0.912 before
recovery and 0.932 vs 0.928 after 90 equal steps. The sequential least-squares refit (``sequential_refit``) is
sample-hungry (each layer's map is fitted on the calibration tokens: 128 sentences are a few thousand rows for
1,536-input Linears) and on 512 sentences reached 0.911, no better than one-shot on as many (a one-off run of the
plugin's functions, not a row here), and lower whitening damping (1e-3, 1e-4 instead of 1e-2, one-off runs too) changed
nothing (0.898). The best start and the longest run together: 0.953 after 450 steps (``f-cal`` final), still short
of 0.98. (*) Its graph is the f-long model's (same ranks, same shapes; only weights differ), yet its timing rows
disagree: 1.16x in its own run, and re-timed interleaved with fp32 and f-long in one group twice afterwards (load
4.7-5.7): f-long 1.29x and 1.29x, f-cal 1.29x and 1.19x. At this operating point the speedup moves between 1.19x
and 1.40x from run to run on this machine: 1.3x is the edge, not a margin (not investigated further).

Round 3 (2026-12-05 09:03-10:11, the machine otherwise idle: two training jobs on its two cores, one torch thread
each, ``nice -n 5``). Ten heads kept, 3,000 steps on the 169,330-line corpus (96,000 distinct sentences)::

    python benchmarks/compress_levers.py final --only p-long --steps 3000 --prune-point 0.16666666666666666,0.375 \
        --corpus-file ~/.cache/edgecraft/corpus/corpus-169330-seed0-46f3a5bfde94.txt --json OUT

held-out cosine **0.9647** (0.941 after 200 steps; 0.966 on training sentences; 29 minutes of training, 0.59 s a
step). Its own timing row (1.03x) is void: a distillation run held the other core while ORT's two threads were
timed. Re-timed instead, every graph in one interleaved group with fp32 on the quiet machine (batch 1, sequence 64,
2 threads, 100 calls over 10 rounds; two groups, 09:50 and 10:11, load 0.4-1.0; ``quiet_retime`` in the JSON)::

    heads/FFN kept (encoder params)   speedup (two groups)   the same graph under load (rows above)
    9 / 960   (0.667)                 1.279, 1.257           1.43x, 1.55x
    10 / 960  (0.695)                 1.200, 1.234 (1.28)    1.34x, 1.37x
    12 / 768  (0.667)                 1.298, 1.299           1.38x
    9 / 1152  (0.750)                 1.183, 1.176           1.28x
    8 / 768   (0.556, the old recipe) --,    1.425           1.61x
    factorized, 0.65 of the Linears   1.146, 1.146           1.29x-1.40x

(1.28 for 10 heads: a third quiet group, 09:48, that timed it alone against fp32.) The speedups measured while
other jobs loaded the machine were 0.1-0.3 higher than on the quiet machine for every graph: the operating points
chosen for "1.3x" under load give 1.15-1.28x quiet. Of the points measured, only 12 heads / FFN 768 (1.30x) and
the old 8 / 768 (1.43x) reach 1.3x quiet (0.771 and 0.692 before recovery against 0.787 for 10 / 960). Every
head kept and FFN -> 768, 3,000 steps on the same corpus (``--prune-point 0.0,0.5``, 11:04-11:33, the only job on
the machine, so its own timing row is a quiet figure): **0.9666 at 1.31x**, better than 10 / 960 on both. The pruning
goal (0.97 at 1.3x) is missed by 0.003.

Round 4 (2026-12-05 12:13-13:04, a distillation on the other core). The same point for one epoch of the corpus
(5,290 steps, 169,280 distinct sentences; ``final-p-long-h12f768-5290`` in the JSON; ``prune.yaml`` trains it)::

    python benchmarks/compress_levers.py final --only p-long --steps 5290 --prune-point 0.0,0.5 \
        --corpus-file ~/.cache/edgecraft/corpus/corpus-169330-seed0-46f3a5bfde94.txt --json OUT

held-out cosine **0.9694** (0.776 before recovery; 50 minutes of training, 0.57 s a step): 76% more steps bought
+0.0028, and the goal is missed by 0.0006, inside the 0.002-0.003 seed noise. ``f-cal`` for 3,000 steps on the same
corpus (``--calibration 512 --factor-cache``; recovery keeps 10% out: 2,700 steps; ``f-cal-3000``): **0.966**
(0.953 after 450). Then the **retime** phase timed them with the 3,000-step pruned graph, the 450-step factorized
one and the distilled students (``distill_levers.py``), every training job paused (SIGSTOP)::

    python benchmarks/compress_levers.py retime --graph prune_h12f768_5290=WORK/models/final-p-long.onnx ... \
        --rounds 20 --repeats 1000 --json OUT --append

    graph                                  cosine    speedup: 13:06, 13:07 (10 rounds); 14:01, 14:01 (20 rounds)
    12 heads / FFN 768, 5,290 steps        0.9694    1.303, 1.265; 1.319, 1.306
    12 heads / FFN 768, 3,000 steps        0.9666    1.295, 1.313; --
    factorized 0.65, 2,700 steps           0.9660    --; 1.163, 1.164
    factorized 0.65, 450 steps (f-cal)     0.9528    1.161, 1.117; 1.149, 1.143
    distilled, 15,000 steps                0.9521    2.033, 1.931; 2.003, 2.056
    distilled, 15,000 steps, int8          0.9511    3.231, 3.210; 3.270, 3.287

Two groups at 13:42 (a host noisier than our own load: fp32 8.5 ms instead of 6.6-6.9) gave the factorized graphs
1.02-1.23x and the pruned one 1.24-1.40x; they are in the JSON and left out above (each group now records every
graph's range of per-round speedups, which shows such noise). The pruned point's speed is 1.27-1.32x: on the goal's
line rather than clear of it.

Round 5 (2026-12-05 15:10-17:10). Two epochs of the same recovery, run as plans (``prune.yaml`` with ``epochs:
2``; ``plan_runs`` in the JSON), one per core: every head and FFN 768, **0.9719** (0.9694 after one); FFN 640
(``ffn_ratio: 0.58, round_to: 64``), 0.9661. ``f-lat`` (factorization ranks by measured ORT latency, the plugin's
``cost: latency, latency: ort``; ``--factor-point`` is then the kept fraction of the factorizable Linears' summed
latency) at 0.65, no recovery (``final --only f-lat --steps 0``): 31 Linears factorized, 0.63 of their params,
0.889 before recovery (0.898 for the params choice at 0.65). Re-timed, nothing else running, two groups (17:09)::

    graph                                  cosine    speedup
    12 heads / FFN 768, 2 epochs (plan)    0.9719    1.266, 1.251
    12 heads / FFN 768, 1 epoch (plan)     0.9694    1.288, 1.283
    12 heads / FFN 640, 2 epochs (plan)    0.9661    1.337, 1.373
    factorized, latency ranks, 0 steps     0.8885    1.152, 1.153
    factorized 0.65 params, 2,700 steps    0.9660    1.155, 1.148

The FFN-768 shapes have now timed 1.25-1.32x in ten timings (median 1.29x): the cosine goal is met, the speed goal
is on the line; FFN 640 clears the speed and misses the cosine by 0.004. Latency-chosen ranks are no faster than
params-chosen ones at this point and start lower, so factorization stays at 1.15x.

Round 6 (2026-12-05 18:07-19:58): the export. Hugging Face models now export with eager attention through
TorchScript (the source's ``exporter: auto``); ONNX Runtime runs that fp32 graph 1.16-1.19x faster than the
dynamo/SDPA one in these groups, and the overhead it removes is what FFN pruning leaves, so pruning's ratio rises.
``prune.yaml`` re-run as a plan (same weights: cosine 0.9719 again), then re-timed, nothing else running
(``retime --repeats 400 --rounds 10``; the old graphs are last round's files)::

    graph (against the TorchScript fp32)        cosine    speedup, five groups 19:53-19:58
    FFN 768, 2 epochs, TorchScript (plan)       0.9719    1.367, 1.294, 1.282, 1.336, 1.327
    the same weights, dynamo (round 5)          0.9719    1.125, 1.084, 1.082, 1.094, 1.101
    fp32, dynamo / SDPA                         1.0       0.874, 0.864, 0.857, 0.857, 0.858

    two groups at 19:53 (ten graphs each)
    distilled, 15,000 steps                     0.9521    2.069, 2.025
    the same + edgecraft int8                   0.9511    3.118, 3.237
    factorized 0.65, before recovery            0.9118    1.218, 1.196
    edgecraft int8 (plan.yaml), TorchScript     0.9977    1.615, 1.532
    edgecraft int8 (plan.yaml), dynamo          0.9977    1.420, 1.394
    quantize_dynamic per-channel, TorchScript   0.9931    1.835, 1.716

Pruning's median is now 1.33x (1.28-1.37x) where the dynamo graph of the same weights gives 1.26x against its own
fp32: the goal's 1.3x is cleared by the median, not by every timing. Distillation keeps its ratios; factorization
gains 0.05x.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "transformer"
BATCH = 32
#: Pruning operating points swept: (head_ratio, ffn_ratio) removed per layer.
PRUNE_POINTS = [(1 / 3, 0.5), (1 / 6, 0.375), (0.25, 0.25), (0.0, 0.5)]
#: Factorization operating points swept: (kept fraction of the encoder Linears' params, which Linears).
FACTOR_POINTS = [(0.65, "all"), (0.65, "ffn")]
#: fnmatch patterns of the Linears factorized: every encoder Linear, or the FFN's two (layer indices 0-5 are one
#: character, so `?` keeps `layer.N.output.dense` apart from `layer.N.attention.output.dense`).
INCLUDE = {"all": ("model.encoder.*",),
           "ffn": ("model.encoder.layer.?.intermediate.dense", "model.encoder.layer.?.output.dense"),
           "smoke": ("model.encoder.layer.5.intermediate.dense",)}
CANDIDATES = (0.125, 0.1875, 0.25, 0.3125, 0.375, 0.5, 0.625)
LR = 2e-4
#: name: (strategy, settings). Pruning: hidden weight, schedule rounds, corpus; factorization: include, hidden, corpus.
LEVERS: dict[str, dict[str, Any]] = {
    "p-base": {"strategy": "pruning", "hidden": 1.0, "rounds": 1, "corpus": None},
    "p-corpus": {"strategy": "pruning", "hidden": 1.0, "rounds": 1, "corpus": 40000},
    "p-long": {"strategy": "pruning", "hidden": 1.0, "rounds": 1, "corpus": 40000},
    "p-ls": {"strategy": "pruning", "hidden": 1.0, "rounds": 1, "corpus": 40000, "reconstruct": "least_squares"},
    "p-mask": {"strategy": "pruning", "hidden": 1.0, "rounds": 1, "corpus": 40000, "reconstruct": "mask"},
    "p-nohidden": {"strategy": "pruning", "hidden": 0.0, "rounds": 1, "corpus": None},
    "p-iter2": {"strategy": "pruning", "hidden": 1.0, "rounds": 2, "corpus": None},
    "p-iter2-corpus": {"strategy": "pruning", "hidden": 1.0, "rounds": 2, "corpus": 40000},
    "f-base": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": None},
    "f-corpus": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000},
    "f-ffn": {"strategy": "factorization", "hidden": 1.0, "include": "ffn", "corpus": None},
    "f-ffn-corpus": {"strategy": "factorization", "hidden": 1.0, "include": "ffn", "corpus": 40000},
    "f-nohidden": {"strategy": "factorization", "hidden": 0.0, "include": "all", "corpus": None},
    "f-long": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000},
    "f-cal": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000,
              "whitening": "one_shot_recalibrated"},
    "f-seq": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000,
              "whitening": "sequential"},
    "f-seqfit": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000,
                 "whitening": "sequential_refit"},
    "f-lat": {"strategy": "factorization", "hidden": 1.0, "include": "all", "corpus": 40000, "cost": "latency"},
}


sys.path.insert(0, str(HERE))
from bench_modules import load as _load  # noqa: E402 (this folder on the path for this import only)

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
tt = _load("transformer_torch", HERE / "transformer_torch.py")
common = _load("transformer_common", HERE / "transformer_common.py")
scaling = _load("corpus_scaling", HERE / "corpus_scaling.py")
log = common.log


# ---------------------------------------------------------------- building blocks
class Bench:
    """Model, teacher, eval text and the shared ORT context (fp32 export, interleaved timer)."""

    def __init__(self, work: Path, *, smoke: bool, repeats: int, rounds: int) -> None:
        import torch

        self.smoke = smoke
        self.ctx = common.build_context(work / "common", repeats=repeats, rounds=rounds, smoke=smoke)
        self.handle = tt._load_handle()
        self.teacher = tt._load_handle().module.eval()
        self.work = work
        self.factor_cache = work / "factorized"
        names = self.handle.io.input_names
        self.eval_feeds = {k: v[:16] for k, v in self.ctx.eval_feeds.items()} if smoke else self.ctx.eval_feeds
        with torch.no_grad():
            self.eval_teacher = np.asarray(self.teacher(*[torch.from_numpy(self.eval_feeds[n]) for n in names]))
        self._corpora: dict[int | None, dict[str, np.ndarray]] = {}
        #: ``--corpus-file``: an offline corpus already made (corpus.py rebuilds its pool when the installed
        #: packages changed, which takes many minutes on a loaded machine).
        self.corpus_file: Path | None = None
        #: ``--calibration``: training sentences whose layer inputs the sequential whitening reads (the one-shot
        #: start keeps 128, the plugin's default): its least-squares refit overfits too few rows.
        self.calibration = 128

    def feeds(self, corpus: int | None) -> dict[str, np.ndarray]:
        """Tokenized training text: train-large.txt (None) or that many lines of the offline corpus."""
        if corpus not in self._corpora:
            path = self.corpus_file if corpus and self.corpus_file else common.train_path(corpus)
            self._corpora[corpus] = common.tokenize(self.ctx.model_dir, path, list(self.handle.io.input_names))
        feeds = self._corpora[corpus]
        return {k: v[:64] for k, v in feeds.items()} if self.smoke else feeds

    def corpus_lines(self, corpus: int | None) -> int:
        """Lines of the text a lever trained on (``--corpus-file`` replaces the corpus levers' 40,000)."""
        if corpus is None:
            return 4120
        if self.corpus_file is None:
            return corpus
        # The lines common.tokenize makes rows of, counted without tokenizing (a factorization refit row never does).
        return len(common.text_lines(self.corpus_file))

    def data(self, feeds: dict[str, np.ndarray]) -> Any:
        from edgecraft.torchkit import TorchData

        return TorchData.from_arrays(feeds, io=self.handle.io, name="train")

    def torch_cos(self, module: Any) -> float:
        import torch

        module.eval()
        names = self.handle.io.input_names
        n = len(self.eval_feeds[names[0]])
        with torch.no_grad():
            out = torch.cat([module(*[torch.from_numpy(self.eval_feeds[k][s:s + 50]) for k in names])
                             for s in range(0, n, 50)])
        return round(common.mean_cosine(out.numpy(), self.eval_teacher), 5)

    def export(self, module: Any, name: str) -> Path:
        path = self.work / "models" / f"{name}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        tt.export(self.handle, module, path)
        return path


def prune(bench: Bench, head: float, ffn: float, *, data: Any, epochs: int = 0, hidden: float = 0.0,
          rounds: int = 1, reconstruct: str = "none") -> tuple[Any, dict[str, Any]]:
    """The pruning plugin's heads_ffn path (Taylor importance from the cosine loss), on a copy of MiniLM."""
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn
    from edgecraft.torchkit import encoder as enc

    student = copy.deepcopy(bench.handle.module)
    before = enc.find_encoder(student).params_count()
    extra: dict[str, Any] = {"schedule": "gradual", "iterations": rounds, "round_data": "split"} if rounds > 1 else {}
    params = PruningParams(mode="heads_ffn", head_ratio=head, ffn_ratio=ffn, importance="taylor", dataset="train",
                           epochs=epochs, batch_size=BATCH, lr=LR, loss="cosine", hidden_weight=hidden,
                           reconstruct=reconstruct, **extra)
    facts = prune_heads_ffn(student, params, where="levers", data=data, teacher=bench.teacher)
    kept = enc.find_encoder(student).params_count() / before
    return student, {"kept": round(kept, 4), "kept_of": "encoder params", "heads": facts["heads_after"],
                     "ffn": facts["ffn_after"], "rounds": facts["rounds"], "reconstruct": facts["reconstruct"]}


def factorize(bench: Bench, keep: float, include: str, *, data: Any, whitening: str = "one_shot",
              cost: str = "params") -> tuple[Any, dict[str, Any]]:
    """The factorization plugin's path: activation-aware SVD, greedy ranks over measured sensitivities.

    ``cost`` is what ``keep`` is a fraction of: the encoder Linears' params, or (``latency``) the summed ONNX
    Runtime latency of the factorizable Linears, each timed alone with its rank candidates (the plugin's
    ``cost: latency, latency: ort``; candidates not faster than the whole layer are dropped).

    ``whitening`` other than one-shot starts from the one-shot model of the same point (128 calibration
    sentences) and refits it on ``bench.calibration`` sentences at the same ranks: ``sequential`` /
    ``sequential_refit`` with the plugin's ``sequential_whitening``, exactly the last stage of
    ``factorize_model`` with that whitening; ``one_shot_recalibrated`` with the plugin's one-shot whitening on
    more sentences (``calibration_samples``; the ranks stay the 128-sentence selection's), without the minutes
    of rank selection again.
    """
    import torch
    from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
    from edgecraft.plugins.factorization.sequential import sequential_whitening
    from edgecraft.plugins.factorization.whiten import activation_aware_linear, input_moments, whitened_basis
    from edgecraft.torchkit import encoder as enc

    suffix = ("" if whitening == "one_shot" else f"-{whitening}-cal{bench.calibration}") + \
        ("" if cost == "params" else f"-{cost}")
    cache = bench.factor_cache / f"keep{keep:.3f}-{include}{'-smoke' if bench.smoke else ''}{suffix}.pt"
    if cache.is_file():  # the same start for every lever at this point (selection takes minutes here)
        saved = torch.load(cache, weights_only=False)
        return saved["module"], dict(saved["facts"])
    calibration = data.take(16 if bench.smoke else 128)
    if whitening != "one_shot":
        start, facts = factorize(bench, keep, include, data=data)
        calibration = data.take(16 if bench.smoke else bench.calibration)
        ranks = {"model.encoder.layer." + layer: rank for layer, rank in facts["ranks"].items()}
        started = time.perf_counter()
        if whitening == "one_shot_recalibrated":  # the one-shot factors at the same ranks, from more sentences
            original = bench.handle.module
            moments = input_moments(original, calibration, list(ranks), samples=len(calibration))
            for name, rank in ranks.items():
                layer = original.get_submodule(name)
                start.set_submodule(name, activation_aware_linear(layer, rank, whitened_basis(layer, *moments[name])))
        else:
            sequential_whitening(bench.handle.module, start, ranks, calibration,
                                 refit=whitening == "sequential_refit")
        facts = {**facts, "whitening": whitening, "calibration_sentences": len(calibration),
                 "refit_seconds": round(time.perf_counter() - started, 1)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"module": start, "facts": facts}, cache)
        return copy.deepcopy(start), facts
    if bench.smoke:
        include = "smoke"
    module = bench.handle.module
    linear = sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
                 for m in enc.find_encoder(module).layers.modules() if isinstance(m, torch.nn.Linear))
    total = sum(p.numel() for p in module.parameters())
    # Smoke: one Linear is factorized, so `keep` applies to its params (the whole encoder's would be unreachable).
    cut = (1 - keep) * (module.get_submodule(INCLUDE["smoke"][0]).weight.numel() if bench.smoke else linear)
    by_cost = {"target": 1 - cut / total} if cost == "params" else {"target": keep, "latency": "ort"}
    config = FactorizationConfig(selection="target", cost=cost, **by_cost,
                                 multiple=16, candidates=CANDIDATES, include=INCLUDE[include], threads=2,
                                 linear_method="activation_aware", calibration_samples=len(calibration))
    result = factorize_model(module, bench.handle.example_inputs(1), config, data.take(32 if not bench.smoke else 8),
                             calibration=calibration)
    kept = (linear - (result.before.params - result.after.params)) / linear
    ranks = {row["layer"].removeprefix("model.encoder.layer."): row["ranks"][0]
             for row in result.summary()["layers"] if "ranks" in row}
    facts = {"kept": round(kept, 4), "kept_of": "encoder Linear params", "include": include,
             "factorized_layers": len(result.factorized), "ranks": ranks,
             **({} if cost == "params" else {"cost": cost, "target": keep, "notes": result.notes})}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": result.module, "facts": facts}, cache)
    return copy.deepcopy(result.module), facts


def budget(bench: Bench, corpus: int | None, steps: int) -> tuple[Any, int, int]:
    """(data, epochs, steps) for ``steps`` optimizer steps of batch 32 (corpus_scaling's rule)."""
    feeds, epochs, taken = scaling.budget_feeds(bench.feeds(corpus), steps=steps, epochs=None)
    return bench.data(feeds), epochs, taken


# ---------------------------------------------------------------- phases
def sweep(bench: Bench) -> list[dict[str, Any]]:
    """Every operating point without recovery: exported, cosine on ORT, timed interleaved with fp32."""
    data = bench.data(bench.feeds(None))
    prune_points = PRUNE_POINTS[:1] if bench.smoke else PRUNE_POINTS
    factor_points = FACTOR_POINTS[:1] if bench.smoke else FACTOR_POINTS
    built: dict[str, tuple[Path, dict[str, Any]]] = {}
    for head, ffn in prune_points:
        name = f"prune h{head:.3f} f{ffn:.3f}"
        log(f"sweep: {name}")
        saved = bench.work / "models" / f"{name.replace(' ', '_')}.json"
        if saved.is_file() and saved.with_suffix(".onnx").is_file():  # built by an earlier run with this --work
            built[name] = (saved.with_suffix(".onnx"), json.loads(saved.read_text()))
            continue
        module, facts = prune(bench, head, ffn, data=data)
        built[name] = (bench.export(module, name.replace(" ", "_")),
                       {"strategy": "pruning", "point": [round(head, 4), ffn], **facts})
        saved.write_text(json.dumps(built[name][1]))
    for keep, include in factor_points:
        name = f"factorize {include} keep{keep:.2f}"
        log(f"sweep: {name}")
        started = time.perf_counter()
        module, facts = factorize(bench, keep, include, data=data)
        facts["select_seconds"] = round(time.perf_counter() - started, 1)
        built[name] = (bench.export(module, name.replace(" ", "_")),
                       {"strategy": "factorization", "point": [keep, include], **facts})
    log(f"sweep: timing {len(built)} models and fp32 interleaved")
    bench.ctx.time_onnx({"fp32": bench.ctx.fp32_onnx, **{n: p for n, (p, _) in built.items()}})
    timing = bench.ctx.extras["last_timing"]
    rows = []
    for name, (path, facts) in built.items():
        cos = bench.ctx.cosine(bench.ctx.embed_onnx(path))
        rows.append({"phase": "sweep", "name": name, **facts, "steps": 0, "cos_ort": round(cos, 5),
                     "speedup": round(1 / timing.ratio(name, "fp32"), 3), "p50_ms": round(timing.p50(name), 3),
                     "fp32_p50_ms": round(timing.p50("fp32"), 3)})
        log(f"row {json.dumps(rows[-1])}")
    return rows


def lever(bench: Bench, name: str, steps: int, point: dict[str, Any], *, final: bool) -> dict[str, Any]:
    """One equal-step recovery (``final``: exported and timed against fp32 on ORT too; ``steps`` 0, the
    ``refit`` phase: a lever's start, without recovery)."""
    import torch

    spec = LEVERS[name]
    if steps:
        data, epochs, taken = budget(bench, spec["corpus"], steps)
    elif spec["strategy"] == "pruning":  # no recovery: the cut (and re-fit), scored and calibrated on the first text
        data, epochs, taken = bench.data({k: v[:512] for k, v in bench.feeds(spec["corpus"]).items()}), 0, 0
    else:
        data, epochs, taken = None, 0, 0
    sweep_data = bench.data(bench.feeds(None))  # importance/sensitivity text: the same for every lever
    started = time.perf_counter()
    torch.set_num_threads(1)
    if spec["strategy"] == "pruning":
        head, ffn = point["prune"]
        # Taylor scores are computed on the recovery data: use the lever's own (its first batches).
        module, facts = prune(bench, head, ffn, data=data, epochs=epochs, hidden=spec["hidden"],
                              rounds=spec["rounds"], reconstruct=spec.get("reconstruct", "none"))
        cos_before = None if steps else bench.torch_cos(module)  # with steps: the steps-0 row (or the sweep's)
        recovery = {"loss": "cosine" + (f"+hidden({spec['hidden']:g})" if spec["hidden"] else ""),
                    "rounds": spec["rounds"], "round_data": "split" if spec["rounds"] > 1 else "all"}
    else:
        from edgecraft.plugins.factorization.recovery import distill_from

        whitening = spec.get("whitening", "one_shot")
        module, facts = factorize(bench, point["factorize"], spec["include"], data=sweep_data, whitening=whitening,
                                  cost=spec.get("cost", "params"))
        facts["whitening"] = whitening
        cos_before = bench.torch_cos(module)
        recovery: dict[str, Any] = {"note": "none (refit phase)"}
        if steps:
            result = distill_from(bench.teacher, module, data, epochs=epochs, lr=LR, batch_size=BATCH, seed=0,
                                  loss="cosine", hidden_weight=spec["hidden"])
            recovery = {"loss": "cosine" + (f"+hidden({spec['hidden']:g})" if spec["hidden"] else ""),
                        "note": "distill_from holds out 10% of the data (best epoch kept): 0.9x the steps",
                        "best_epoch": result.get("best_epoch")}
        taken = round(taken * 0.9)
    seconds = time.perf_counter() - started
    torch.set_num_threads(2)
    row: dict[str, Any] = {"phase": "final" if final else "levers" if steps else "refit", "name": name,
                           "strategy": spec["strategy"], "corpus": bench.corpus_lines(spec["corpus"]), "steps": taken,
                           "epochs": epochs, "distinct_sentences": len(data) if data is not None else 0,
                           "cos_before_recovery_torch": cos_before,
                           "cos_torch": bench.torch_cos(module), "train_seconds": round(seconds, 1),
                           **facts, "recovery": recovery}
    row.pop("rounds", None) if spec["strategy"] == "factorization" else None
    if final:
        path = bench.export(module, f"final-{name}")
        bench.ctx.time_onnx({"fp32": bench.ctx.fp32_onnx, name: path})
        timing = bench.ctx.extras["last_timing"]
        row.update(cos_ort=round(bench.ctx.cosine(bench.ctx.embed_onnx(path)), 5),
                   speedup=round(1 / timing.ratio(name, "fp32"), 3), p50_ms=round(timing.p50(name), 3))
    log(f"row {json.dumps(row, default=str)}")
    return row


# ---------------------------------------------------------------- output
COLUMNS = ["phase", "name", "kept", "steps", "corpus", "cos_before_recovery_torch", "cos_ort", "cos_torch",
           "speedup", "train_seconds"]


def retime(bench: Bench, graphs: dict[str, Path]) -> dict[str, Any]:
    """Exported graphs timed interleaved with fp32 in one group (the quiet-machine figures), with their cosine."""
    log(f"retime: {', '.join(graphs)} and fp32 interleaved")
    bench.ctx.time_onnx({"fp32": bench.ctx.fp32_onnx, **graphs})
    timing = bench.ctx.extras["last_timing"]
    # the spread within the group: each round's speedup (a noisy host shows here)
    per_round = {n: 1 / timing.round_ratios(n, "fp32") for n in graphs}
    group = {"at": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
             "speedup": {n: round(1 / timing.ratio(n, "fp32"), 3) for n in graphs},
             "speedup_round_range": {n: [round(float(r.min()), 3), round(float(r.max()), 3)]
                                     for n, r in per_round.items()},
             "p50_ms": {n: round(timing.p50(n), 3) for n in ("fp32", *graphs)},
             "cos_ort": {n: round(bench.ctx.cosine(bench.ctx.embed_onnx(p)), 5) for n, p in graphs.items()},
             "graphs": {n: str(p) for n, p in graphs.items()}, "load1": round(os.getloadavg()[0], 2)}
    log(f"retime {json.dumps(group)}")
    return group


def print_table(rows: list[dict[str, Any]]) -> None:
    def cell(row: dict[str, Any], col: str) -> str:
        value = row.get(col)
        return "" if value is None else str(value)

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) if rows else len(c) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(cell(r, c).ljust(widths[c]) for c in COLUMNS))


def write(path: Path, rows: list[dict[str, Any]], earlier: dict[str, Any], *, smoke: bool, seconds: float,
          load: list[float]) -> list[dict[str, Any]]:
    """The JSON: ``earlier``'s rows (what the file held when this run started, with ``--append``) and this run's."""
    from edgecraft.cpu import cpu_summary, int8_features

    done = {(r["phase"], r["name"]) for r in rows}
    table = [r for r in earlier["table"] if (r["phase"], r["name"]) not in done] + rows
    order = {"sweep": 0, "refit": 1, "levers": 2, "final": 3}
    table.sort(key=lambda r: (order.get(r["phase"], 9), r.get("strategy", ""), r["name"]))
    run = {"rows": sorted(done), "wall_s": round(seconds, 1), "loadavg_start": load,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    runs = [*earlier.get("runs", []), run]
    result = {"table": table, "smoke": smoke, "cpu_int8_features": int8_features(), "cpu": cpu_summary(),
              "threads": common.THREADS, "lr": LR, "batch": BATCH, "cos_reference": "fp32 MiniLM on eval.txt "
              "(cos_ort: ONNX models on ORT; cos_torch: torch, same weights)", "runs": runs,
              "wall_s": round(seconds + earlier.get("wall_s", 0.0), 1)}
    result.update({k: v for k, v in earlier.items() if k not in result})  # e.g. quiet_retime, plan_runs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", nargs="?", choices=["sweep", "levers", "final", "refit", "retime"], default="sweep")
    parser.add_argument("--only", default="", help=f"levers, comma-separated, of: {', '.join(LEVERS)}")
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps per recovery (batch 32)")
    parser.add_argument("--prune-point", default="0.25,0.375", help="head_ratio,ffn_ratio of the levers (heads "
                        "kept per layer round down: 12 x (1 - 0.1667) keeps 9)")
    parser.add_argument("--factor-point", type=float, default=0.65,
                        help="kept fraction of the encoder Linears' params for the factorization levers")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per model in all, split over "
                        "--rounds (edgecraft's InterleavedTimer: repeats // rounds a round at most)")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--corpus-file", type=Path, default=None, help="the corpus levers' text: this file "
                        "(e.g. ~/.cache/edgecraft/corpus/corpus-40000-seed0-*.txt) instead of corpus.py's corpus_file")
    parser.add_argument("--factor-cache", type=Path, default=None, help="folder of factorized models (before "
                        "recovery) to reuse, keyed by point (default: WORK/factorized); selection takes minutes")
    parser.add_argument("--calibration", type=int, default=128, help="training sentences the sequential whitening "
                        "levers (f-seq, f-seqfit) read, one at a time (the one-shot start: 128)")
    parser.add_argument("--append", action="store_true", help="keep the rows already in --json (same phase and "
                        "name replaced)")
    parser.add_argument("--graph", action="append", default=[], metavar="NAME=PATH",
                        help="retime: an exported model to time against fp32 (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="one point per strategy, 2 steps: the test suite's run")
    args = parser.parse_args(argv)
    graphs = {}
    for spec in args.graph:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--graph {spec!r}: expected NAME=PATH (e.g. h12f768=/tmp/work/models/final-p-long.onnx)")
        graphs[name] = Path(path).expanduser()
        if not graphs[name].is_file():
            parser.error(f"--graph {spec!r}: no file at {graphs[name]} (NAME=PATH of an exported ONNX model)")
    if args.phase == "retime" and not graphs and not args.smoke:
        parser.error("retime needs at least one --graph NAME=PATH")
    import torch

    load = [round(x, 2) for x in os.getloadavg()]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    head, ffn = (float(x) for x in args.prune_point.split(","))
    point = {"prune": (head, ffn), "factorize": args.factor_point}
    start = time.time()
    earlier = json.loads(args.json.read_text()) if args.json and args.append and args.json.is_file() \
        else {"table": [], "wall_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="edgecraft-levers-") as tmp:
        work = args.work or Path(tmp)
        if args.smoke:
            args.repeats, args.rounds = 5, 2
        bench = Bench(work, smoke=args.smoke, repeats=args.repeats, rounds=args.rounds)
        if args.factor_cache:
            bench.factor_cache = args.factor_cache
        bench.corpus_file = args.corpus_file
        bench.calibration = args.calibration
        rows: list[dict[str, Any]] = []
        if args.smoke:
            rows += sweep(bench)
            rows += [lever(bench, n, 2, point, final=n == "f-ffn") for n in ("p-iter2", "f-ffn")]
            rows.append(lever(bench, "f-seqfit", 0, point, final=False))  # the refit phase's path
            graphs = {"sweep": sorted((work / "models").glob("prune*.onnx"))[0]}  # and the retime phase's
        elif args.phase == "sweep":
            rows += sweep(bench)
        elif args.phase != "retime":
            names = [n for n in args.only.split(",") if n]
            unknown = sorted(set(names) - set(LEVERS))
            if unknown or not names:
                parser.error(f"--only needs lever names among {', '.join(LEVERS)} (got {unknown or 'none'})")
            for name in names:
                steps = 0 if args.phase == "refit" else args.steps
                rows.append(lever(bench, name, steps, point, final=args.phase == "final"))
                if args.json:
                    write(args.json, rows, earlier, smoke=args.smoke, seconds=time.time() - start, load=load)
        if args.smoke or args.phase == "retime":
            earlier.setdefault("quiet_retime", {}).setdefault("groups", []).append(retime(bench, graphs))
        table = write(args.json, rows, earlier, smoke=args.smoke, seconds=time.time() - start,
                      load=load) if args.json else rows
    print_table(table)
    print(f"loadavg at start: {load}; wall {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
