"""`edgecraft search`: the typed space (exit 2 naming the bad entry), the noise-aware front, and end to end
on the digits model: a candidate found, an unreachable contract, a resumed study, the best plan re-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgecraft.cli import main
from edgecraft.search.pareto import Value, dominates, front, hypervolume, pick_best

FAST_LATENCY = {"threads": 1, "warmup": 5, "round_ms": 10, "rounds": 5}


@pytest.fixture
def workdir(tmp_path: Path, example_dir: Path) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    return tmp_path


def plan_dict(*, search: dict[str, Any] | None = None, contracts: list[dict[str, Any]] | None = None,
              pruning: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    if pruning:
        steps.append({"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.5, "round_to": 8}})
    steps.append({"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "train",
                                                         "calibration_samples": 32}})
    return {
        "name": "search-test",
        "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
        "data": {"train": {"kind": "digits", "split": "train", "max_samples": 200},
                 "test": {"kind": "digits", "split": "test", "max_samples": 120}},
        "evaluation": {"dataset": "test", "metrics": ["top1"]},
        "latency": FAST_LATENCY,
        "gate": {"time_budget_s": 3},
        "steps": steps,
        "targets": ["ort-cpu"],
        "contracts": contracts if contracts is not None else [
            {"kind": "accuracy", "metric": "top1", "max_drop": 0.05}, {"kind": "size", "min_ratio": 2.0}],
        "search": search if search is not None else {
            "trials": 2, "space": {"steps[quantization].params.per_channel": {"choices": [True, False]}}},
    }


def search_cli(workdir: Path, plan: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any] | None]:
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    out = workdir / "out"
    code = main(["search", str(path), "--out", str(out), "--cache-dir", str(workdir / "cache"), "-q", *extra])
    doc = out / "search.json"
    return code, json.loads(doc.read_text()) if doc.exists() else None


# ------------------------------------------------------------------------------------------ the front
def test_dominance_needs_an_advantage_outside_the_interval() -> None:
    fast_noisy = [Value(0.50, 0.45, 0.55), Value.exact(100.0)]
    about_as_fast_smaller = [Value(0.52, 0.47, 0.57), Value.exact(90.0)]
    clearly_slower = [Value(0.80, 0.78, 0.82), Value.exact(80.0)]
    assert dominates(about_as_fast_smaller, fast_noisy)  # 0.50 vs 0.52 is noise: size decides
    assert not dominates(fast_noisy, about_as_fast_smaller)
    assert not dominates(about_as_fast_smaller, clearly_slower)  # a real trade-off
    assert front({0: fast_noisy, 1: about_as_fast_smaller, 2: clearly_slower}) == [1, 2]
    # priority: latency first; 0 and 1 tie within noise, so size picks 1
    assert pick_best({0: fast_noisy, 1: about_as_fast_smaller, 2: clearly_slower}) == 1


def test_hypervolume_2d_and_3d() -> None:
    assert hypervolume([(0.5, 0.5)], (1.0, 1.0)) == pytest.approx(0.25)
    assert hypervolume([(0.5, 0.5), (0.25, 0.75)], (1.0, 1.0)) == pytest.approx(0.3125)
    assert hypervolume([(0.5, 0.5, 0.5)], (1.0, 1.0, 1.0)) == pytest.approx(0.125)
    assert hypervolume([(0.5, 0.5, 0.5), (0.0, 0.9, 0.9)], (1.0, 1.0, 1.0)) == pytest.approx(0.125 + 0.01 * 0.5)
    assert hypervolume([(1.5, 0.1)], (1.0, 1.0)) == 0.0


def test_builtin_strategies_offer_default_spaces() -> None:
    from edgecraft.registry import build_registry

    registry = build_registry()
    for name in ("pruning", "quantization", "distillation", "factorization"):
        strategy = registry.strategy(name)
        params = strategy.parse_params({})
        space = type(strategy).default_space(params)
        assert "enabled" in space and all(k == "enabled" or k.startswith("params.") for k in space), name


# ------------------------------------------------------------------------------------------ bad spaces: exit 2
@pytest.mark.search
@pytest.mark.parametrize(("space", "needle"), [
    ({"steps[prunning].params.ratio": {"low": 0.2, "high": 0.5}}, "no step 'prunning'"),
    ({"steps[pruning].params.ratioo": {"low": 0.2, "high": 0.5}}, "has no param 'ratioo'"),
    ({"steps[pruning].params.ratio": {"low": -0.2, "high": 0.5}}, "below the param's bound (>= 0)"),
    ({"steps[quantization].params.calibration_samples": {"low": 8, "high": 200000}}, "above the param's bound"),
    ({"steps[quantization].params.mode": {"choices": ["static", "int4"]}}, "'int4' is not accepted"),
    ({"steps[pruning].params.ratio": {"low": 0.2, "high": 1.2}}, "does not compile"),
    ({"steps[pruning].enabled": {"choices": ["yes"]}}, "'enabled' takes"),
    ({"pruning.ratio": {"low": 0.2, "high": 0.5}}, "not a space path"),
])
def test_bad_space_is_exit_2_naming_the_entry(workdir: Path, capsys, space: dict[str, Any], needle: str) -> None:
    code, doc = search_cli(workdir, plan_dict(search={"trials": 1, "space": space}, pruning=True))
    err = capsys.readouterr().err
    assert code == 2, err
    assert doc is None
    path = next(iter(space))
    assert f"search.space.{path}" in err and needle in err, err


@pytest.mark.search
def test_bad_objective_is_a_plan_error(workdir: Path, capsys) -> None:
    code, _ = search_cli(workdir, plan_dict(search={"objective": ["speed"]}))
    assert code == 2
    assert "search.objective" in capsys.readouterr().err


@pytest.mark.search
def test_ray_without_the_extra_is_exit_2(workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, doc = search_cli(workdir, plan_dict(), "--ray", "127.0.0.1:6379")
    assert code == 2 and doc is None
    err = capsys.readouterr().err
    assert "--ray needs the ray extra" in err and "pip install 'edgecraft[ray]'" in err


@pytest.mark.search
@pytest.mark.parametrize("parallel", [0, "two"])
def test_bad_parallel_is_exit_2_naming_the_field(workdir: Path, capsys, parallel: Any) -> None:
    code, doc = search_cli(workdir, plan_dict(search={"trials": 2, "parallel": parallel}), "--ray", "local")
    assert code == 2 and doc is None
    assert "search.parallel" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
@pytest.mark.search
def test_search_finds_a_candidate_and_its_plan_reuses_the_artifact(workdir: Path, capsys) -> None:
    code, doc = search_cli(workdir, plan_dict())
    assert code == 0, capsys.readouterr()
    assert doc is not None and doc["schema"] == "edgecraft.search/v1"
    target = doc["targets"][0]
    assert target["trials_finished"] == 2 and target["best"] is not None and target["front"]
    best = target["best"]
    out = workdir / "out"
    for name in ("trials.csv", "trials.md", "search.html", "search.db"):
        assert (out / name).is_file(), name
    plan_file = Path(best["plan_file"])
    assert plan_file == out / "best.ort-cpu.plan.yaml"
    assert "search" not in yaml.safe_load(plan_file.read_text())
    report = workdir / "best-report.json"
    code = main(["run", str(plan_file), "--report-json", str(report), "--cache-dir", str(workdir / "cache"), "-q"])
    assert code == 0
    entry = json.loads(report.read_text())["targets"][0]
    assert entry["compiled_key"] == best["compiled_key"]
    assert entry["compressed"]["cached"] is True  # the search's artifact, not a rebuild


@pytest.mark.slow
@pytest.mark.search
def test_unreachable_contract_exits_1_naming_the_closest_trial(workdir: Path, capsys) -> None:
    contracts = [{"kind": "accuracy", "metric": "top1", "max_drop": 0.05},
                 {"kind": "latency", "percentile": "p50", "min_speedup": 50.0}]
    code, doc = search_cli(workdir, plan_dict(contracts=contracts))
    out = capsys.readouterr().out
    assert code == 1
    assert doc is not None
    closest = doc["targets"][0]["closest"]
    assert doc["targets"][0]["best"] is None and closest is not None
    assert [m["contract"] for m in closest["missed"]] == ["latency: p50 speedup >= 50x"]
    assert closest["missed"][0]["relative_shortfall"] > 0.5
    assert f"closest: trial {closest['trial']}" in out and "p50 speedup >= 50x" in out
    assert not (workdir / "out" / "best.ort-cpu.plan.yaml").exists()


@pytest.mark.slow
@pytest.mark.search
def test_resume_runs_only_the_missing_trials(workdir: Path, capsys) -> None:
    import optuna

    space = {"steps[quantization].params.per_channel": {"choices": [True, False]},
             "steps[quantization].params.calibration_samples": {"low": 16, "high": 64}}
    code, doc = search_cli(workdir, plan_dict(search={"trials": 2, "space": space}))
    assert code == 0 and doc is not None
    assert doc["targets"][0]["trials_run_now"] == 2
    # a search killed mid-trial leaves that trial RUNNING in the storage
    storage = f"sqlite:///{workdir / 'out' / 'search.db'}"
    study = optuna.load_study(study_name="search-test/ort-cpu", storage=storage)
    study.ask()
    code, doc = search_cli(workdir, plan_dict(search={"trials": 4, "space": space}))
    assert code == 0 and doc is not None
    target = doc["targets"][0]
    assert target["trials_run_now"] == 2 and target["trials_finished"] == 4
    numbers = [t["number"] for t in target["trials"]]
    assert numbers[:2] == [0, 1] and 2 not in numbers  # trial 2 was the interrupted one: failed, not counted


@pytest.mark.slow
@pytest.mark.search
def test_trial_missing_accuracy_after_the_torch_stage_is_pruned(workdir: Path, capsys) -> None:
    contracts = [{"kind": "accuracy", "metric": "top1", "max_drop": 0.001}, {"kind": "size", "min_ratio": 2.0}]
    space = {"steps[pruning].params.ratio": {"low": 0.6, "high": 0.7}}
    code, doc = search_cli(workdir, plan_dict(search={"trials": 1, "space": space}, contracts=contracts,
                                              pruning=True))
    assert code == 1
    assert doc is not None
    trial = doc["targets"][0]["trials"][0]
    assert trial["state"] == "pruned"  # stopped before export, int8 and timing
    assert trial["verdicts"][0]["detail"].startswith("after the torch stage: top1")
    assert doc["targets"][0]["closest"]["missed"][0]["contract"] == "accuracy: top1 drop <= 0.001"
    # The sampler learns from it: told complete with no gain assumed and the accuracy contract violated
    # (a pruned trial is invisible to the GP sampler, which then proposes the same region again).
    import optuna

    storage = f"sqlite:///{workdir / 'out' / 'search.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    (told,) = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert told.state == optuna.trial.TrialState.COMPLETE
    accuracy, latency_ratio, size = told.values  # the default objectives: accuracy, latency.p50, size
    assert accuracy == trial["metrics"]["top1"] and latency_ratio == 1.0  # no speedup is assumed ...
    assert size > 0  # ... nor any size gain: the baseline's bytes
    assert told.user_attrs["constraints"][0] > 0  # infeasible: the accuracy contract is missed


@pytest.mark.slow
@pytest.mark.search
def test_time_budget_stops_with_the_front_so_far(workdir: Path) -> None:
    code, doc = search_cli(workdir, plan_dict(search={"trials": 5, "space": {
        "steps[quantization].params.calibration_samples": {"low": 16, "high": 64}}}), "--time-budget", "1")
    assert doc is not None and doc["stopped_by_budget"] is True
    assert doc["targets"][0]["trials_run_now"] == 1 and code == 0


@pytest.mark.slow
@pytest.mark.search
def test_isolated_trials_run_in_a_child_process(workdir: Path) -> None:
    code, doc = search_cli(workdir, plan_dict(search={"trials": 1, "isolate": True, "space": {
        "steps[quantization].params.per_channel": {"choices": [True]}}}))
    assert code == 0 and doc is not None
    trial = doc["targets"][0]["trials"][0]
    assert trial["state"] == "complete" and trial["passed"] is True
    assert (workdir / "out" / "best.ort-cpu.plan.yaml").is_file()


# ------------------------------------------------------------------------------------------ default spaces, trial 0
@pytest.mark.search
def test_default_range_is_narrowed_to_what_compiles(workdir: Path) -> None:
    """The pruning default space reaches ratio 0.8, which would empty a 32-channel layer at round_to 8:
    without a user space, the range is cut back to what compiles, with a note (a user range is exit 2)."""
    from edgecraft.registry import build_registry
    from edgecraft.search.study import setup_search

    plan = plan_dict(search={"trials": 1}, pruning=True)
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    setup = setup_search(path, build_registry())
    ratio = next(d for d in setup.dims["ort-cpu"] if d.path == "steps[pruning].params.ratio")
    assert ratio.dim.low == 0.2 and 0.74 <= ratio.dim.high < 0.75
    assert any("steps[pruning].params.ratio: narrowed to [0.2, 0.7" in n and "round_to=8" in n
               for n in setup.notes), setup.notes


@pytest.mark.search
def test_trial_0_is_the_plans_recipe_with_the_strategies_defaults(workdir: Path) -> None:
    from edgecraft.registry import build_registry
    from edgecraft.search.space import for_target
    from edgecraft.search.studies import plan_values
    from edgecraft.search.study import setup_search

    plan = plan_dict(search={"trials": 1}, pruning=True)
    plan["steps"][0]["params"].update(dataset="train", epochs=2)
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    setup = setup_search(path, build_registry())
    values = plan_values(for_target(setup.raw, "ort-cpu"), setup.dims["ort-cpu"], setup.registry)
    assert values == {"steps[pruning].enabled": True, "steps[pruning].params.ratio": 0.5,
                      "steps[pruning].params.importance": "l2",  # left out by the plan: the strategy's default
                      "steps[pruning].params.epochs": 2,
                      "steps[quantization].enabled": True, "steps[quantization].params.mode": "static",
                      "steps[quantization].params.per_channel": True}
    epochs = next(d for d in setup.dims["ort-cpu"] if d.path == "steps[pruning].params.epochs")
    assert (epochs.dim.low, epochs.dim.high, epochs.is_int) == (2, 6, True)


@pytest.mark.slow
@pytest.mark.search
def test_int8_variants_share_the_pruning_result_and_the_baseline(workdir: Path) -> None:
    """Two recipes differing only after the torch stage: the second reuses the first's pruned model
    (no second pruning) and the baseline artifact; each gets its own compressed artifact. A recipe with
    pruning switched off shares the baseline too (its key does not carry the steps' plugin versions)."""
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.progress import NullProgress
    from edgecraft.registry import build_registry
    from edgecraft.search.study import setup_search
    from edgecraft.search.trials import run_trial_here

    space = {"steps[pruning].enabled": {"choices": [True, False]},
             "steps[quantization].params.per_channel": {"choices": [True, False]}}
    path = workdir / "plan.yaml"
    loose = [{"kind": "size", "min_ratio": 2.0}]  # no fine-tuning here: no accuracy contract, no early stop
    path.write_text(yaml.safe_dump(plan_dict(search={"trials": 2, "space": space}, pruning=True, contracts=loose),
                                   sort_keys=False))
    setup = setup_search(path, build_registry())
    cache = ArtifactCache(workdir / "cache", reuse=True)
    recipes = ((True, True), (True, False), (False, True))
    records = [run_trial_here(setup, "ort-cpu", {"steps[pruning].enabled": pruning,
                                                 "steps[quantization].params.per_channel": per_channel}, cache,
                              NullProgress(), {})[0] for pruning, per_channel in recipes]
    first, second, unpruned = records
    assert first["state"] == second["state"] == unpruned["state"] == "complete"
    assert first["torch_stage_reused"] is False and second["torch_stage_reused"] is True
    assert first["baseline_cached"] is False and second["baseline_cached"] is True
    assert first["compiled_key"] != second["compiled_key"] and second["cached"] is False
    assert unpruned["baseline_cached"] is True and unpruned["torch_stage_reused"] is False


@pytest.mark.slow
@pytest.mark.search
def test_repeats_and_the_baseline_are_not_run_nor_counted(workdir: Path, capsys) -> None:
    """A space with one recipe besides the baseline: trial 0 runs it; every later proposal repeats it or
    switches int8 off (no step left): told without running, not counted, until the search gives up."""
    import optuna

    space = {"steps[quantization].enabled": {"choices": [True, False]},
             "steps[quantization].params.per_channel": {"choices": [True]}}
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict(search={"trials": 2, "space": space}), sort_keys=False))
    code = main(["search", str(path), "--out", str(workdir / "out"), "--cache-dir", str(workdir / "cache")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    doc = json.loads((workdir / "out" / "search.json").read_text())
    target = doc["targets"][0]
    assert target["trials_finished"] == 1 and [t["number"] for t in target["trials"]] == [0]
    assert "not run and not counted: the same recipe as trial 0" in err
    assert "not run and not counted: it switches every step off" in err
    assert "6 proposals were repeats or no recipe: the space offers nothing new" in err
    study = optuna.load_study(study_name="search-test/ort-cpu", storage=f"sqlite:///{workdir / 'out' / 'search.db'}")
    skipped = [t for t in study.trials if "edgecraft_skipped" in t.user_attrs]
    assert len(skipped) == 6 and len(study.trials) == 7
    repeats = [t for t in skipped if t.params.get("steps[quantization].enabled")]
    assert repeats and all(t.values == study.trials[0].values for t in repeats)  # told the original's result


def test_auto_sampler_is_gp_for_tens_of_trials_and_tpe_beyond() -> None:
    from edgecraft.plan.search import GP_MAX_TRIALS, SearchSpec

    assert SearchSpec(trials=12).effective_sampler() == "gp"
    assert SearchSpec(trials=GP_MAX_TRIALS + 1).effective_sampler() == "tpe"
    assert SearchSpec(trials=12, sampler="tpe").effective_sampler() == "tpe"


@pytest.mark.slow
@pytest.mark.search
def test_gp_sampler_searches_a_fixed_space(workdir: Path) -> None:
    """The GP needs every param in every trial: switched-off steps' params are sampled too but left out
    of the recipe (so the same recipe is recognized as a repeat)."""
    import optuna

    space = {"steps[quantization].enabled": {"choices": [True, False]},
             "steps[quantization].params.per_channel": {"choices": [True, False]},
             "steps[quantization].params.calibration_samples": {"low": 16, "high": 64}}
    code, doc = search_cli(workdir, plan_dict(search={"trials": 3, "startup_trials": 1, "sampler": "gp",
                                                      "space": space}))
    assert code == 0 and doc is not None and doc["sampler"] == "gp"
    target = doc["targets"][0]
    assert target["trials_finished"] == 3 and all(t["state"] == "complete" for t in target["trials"])
    study = optuna.load_study(study_name="search-test/ort-cpu", storage=f"sqlite:///{workdir / 'out' / 'search.db'}")
    for t in study.trials:
        assert set(t.params) == set(space)  # one fixed space, whatever was switched off
        if not t.params["steps[quantization].enabled"]:
            assert "edgecraft_skipped" in t.user_attrs
