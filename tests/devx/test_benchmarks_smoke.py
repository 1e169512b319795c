"""Every benchmark's ``--smoke`` run: a benchmark whose script crashes is caught here, not at release time.

Benchmarks rot unseen otherwise: an SDK refactor changes a signature a script calls, and the figures the
docs quote can no longer be reproduced (issue 25, class 12: ``quantization.py`` and ``gate_cost.py`` both
crashed on main). The scripts are discovered by globbing ``benchmarks/``: a file with a ``__main__`` guard
is a benchmark (a file without one must be a helper a benchmark loads); every benchmark must accept
``--smoke --json OUT``, run its real code path on tiny sizes, print its table, and write JSON that says it
was a smoke run and records the CPU's int8 features (the figures of an int8 benchmark mean nothing without
them). A new benchmark without ``--smoke`` fails this test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

#: The optional parts a benchmark needs (markers of tests/suite_requirements.py): skipped, or failed under
#: EDGECRAFT_REQUIRE_ALL=1, when missing.
NEEDS: dict[str, tuple[str, ...]] = {
    "tvm_arm": ("tvm", "aarch64"), "ray_scaling": ("ray",),
    "search": ("search",), "quantization": ("openvino",), "memory": ("openvino",),
    "transformers": ("openvino", "huggingface", "realmodels"), "transformer_torch": ("huggingface", "realmodels"),
    "distill_levers": ("huggingface", "realmodels"),
    "compress_levers": ("huggingface", "realmodels"),
}
#: Headline figures each benchmark's JSON must hold (beyond the common ``smoke`` and CPU keys).
HEADLINES: dict[str, tuple[str, ...]] = {
    "quantization": ("ort_speedup", "ov_speedup", "digits_drop_pt", "vs_ort_quantize_static_latency_ratio"),
    "gate_cost": ("unchanged_pass_rate_small", "slower_fail_rate_small", "budget_overrun_s",
                  "loaded_unchanged_pass_rate", "loaded_slower_fail_rate", "seconds"),
    "gate_fidelity": ("unchanged", "slower"),
    "pruning": ("structured_speedup", "unstructured_sparsity"),
    "factorization": ("params_ratio", "latency_ratio"),
    "distillation": ("kd_accuracy_mean", "student_speedup"),
    "memory": ("ort_int8_memory_ratio", "memory_cv"),
    "compress_levers": ("table", "wall_s"),
}


MAIN_GUARD = re.compile(r"^if __name__ == [\"']__main__[\"']:", re.MULTILINE)


def discover() -> tuple[list[str], list[str]]:
    """(benchmarks, helpers): a benchmark is a script (it has a ``__main__`` guard); a helper is a module
    without one that some benchmark loads by name (a file that is neither fails the test below)."""
    files = {p.stem: p.read_text() for p in sorted(BENCHMARKS.glob("*.py"))}
    scripts = sorted(n for n, text in files.items() if MAIN_GUARD.search(text))
    return scripts, sorted(set(files) - set(scripts))


SCRIPTS, HELPERS = discover()
#: Benchmarks whose --smoke run a test of their own area already runs, with assertions on their figures: not run
#: twice (the CI's time); the test below checks that test still runs it.
OWN_SMOKE_TEST = {
    "arm": "tests/backends/executorch/test_arm_benchmark.py",
    "ort_arm": "tests/backends/onnxruntime/test_ort_aarch64.py",
    "qat": "tests/plugins/quantization/test_qat_run.py",
    "real_models": "tests/core/test_real_models_benchmark.py",
    "int8_execution": "tests/core/test_executed_compute.py",
    "corpus_scaling": "tests/plugins/sources/test_offline_corpus.py",
    "ort_arm_fp16": "tests/backends/onnxruntime/test_ort_aarch64_fp16.py",
}


def test_benchmarks_with_their_own_smoke_test_still_have_it() -> None:
    root = BENCHMARKS.parent
    for name, test in OWN_SMOKE_TEST.items():
        text = (root / test).read_text()
        names_it = f"{name}.py" in text or f"import {name} " in text or f"import {name}\n" in text
        assert name in SCRIPTS and names_it and "--smoke" in text, f"{test} no longer runs {name} --smoke"


def test_discovery_finds_the_benchmarks_and_their_helpers() -> None:
    assert {"quantization", "gate_cost", "arm"} <= set(SCRIPTS)
    assert {"bench_models", "transformer_common"} <= set(HELPERS)
    texts = {n: (BENCHMARKS / f"{n}.py").read_text() for n in SCRIPTS}
    orphans = [h for h in HELPERS if not any(re.search(rf"\b{h}\b", t) for t in texts.values())]
    assert not orphans, (f"benchmarks/{orphans[0]}.py is neither a script (no __main__ guard) nor a module a "
                         "benchmark loads: give it a main with --smoke")


def _cpu_recorded(data: dict[str, object]) -> bool:
    return any(isinstance(cpu, dict) and "int8" in cpu for cpu in (data.get("cpu"), data.get("host_cpu")))


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=[getattr(pytest.mark, m) for m in NEEDS.get(n, ())])
                                  for n in SCRIPTS if n not in OWN_SMOKE_TEST])
def test_benchmark_smoke_runs_and_writes_its_figures(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, (f"benchmarks/{name}.py --smoke exited {proc.returncode} after {seconds:.0f} s "
                                  f"(every benchmark needs a --smoke mode):\n{proc.stderr[-4000:]}")
    data = json.loads(out.read_text())
    assert data.get("smoke") is True, f"{name}: the JSON must say it was a smoke run (\"smoke\": true)"
    assert _cpu_recorded(data), f"{name}: the JSON must record the CPU's int8 features (\"cpu\": cpu_summary())"
    missing = [key for key in HEADLINES.get(name, ()) if key not in data]
    assert not missing, f"{name}: headline figures missing from the JSON: {missing}"
    assert proc.stdout.strip(), f"{name}: printed no table"
    print(f"{name} --smoke: {seconds:.1f} s")
