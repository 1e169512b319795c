"""Log every edgecraft run to MLflow: params, metrics, verdicts and artifacts, to a local store, no server.

Opt in with ``EDGECRAFT_MLFLOW_TRACKING_URI`` (e.g. ``file:./mlruns`` or a folder path; any MLflow
tracking URI works); ``EDGECRAFT_MLFLOW_EXPERIMENT`` names the experiment (default: the plan's
name). Unset, the hooks do nothing and MLflow is never imported. Needs the ``mlflow`` extra
(``pip install 'edgecraft[mlflow]'``, which installs ``mlflow-skinny``).

What is logged, one MLflow run per edgecraft run (at ``edgecraft_report_ready``):

* params: plan name, steps (strategy and params), targets and options, latency and gate settings;
* metrics: per target, baseline/compressed/reference accuracy metrics, latency percentiles, sizes,
  ratios, and every verdict's measured value (names like ``ort-cpu.compressed.top1``);
* tags: overall and per-verdict status (``verdict.ort-cpu.<name>``), passed, exit code;
* artifacts: the report files (JSON, JUnit, Markdown, HTML) and each target's compressed artifact
  folder (the model that would ship, with its manifest).

MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE=true`` (it steers users to a
database); for a ``file:`` URI or a plain path this plugin sets that variable, because a local file
store is the point: no server and no database to run in CI.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from edgecraft.errors import PluginError
from edgecraft.hookspecs import hookimpl

URI_ENV = "EDGECRAFT_MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "EDGECRAFT_MLFLOW_EXPERIMENT"

_state: dict[str, Any] = {}


def _enabled() -> str | None:
    return os.environ.get(URI_ENV) or None


def _key(text: str) -> str:
    """MLflow keys allow alphanumerics, '_', '-', '.', ' ', ':' and '/'."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", text)[:250]


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[_key(prefix)] = json.dumps(value) if isinstance(value, list) else str(value)


def _params(plan: dict[str, Any] | None, report: dict[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {"plan": str(report.get("plan")), "plan_name": str(report.get("plan_name")),
                              "edgecraft_version": str(report.get("edgecraft_version"))}
    if plan is not None:
        for i, step in enumerate(plan.get("steps", [])):
            params[f"steps.{i}.strategy"] = str(step.get("strategy"))
            _flat(f"steps.{i}.params", step.get("params") or {}, params)
        for target in plan.get("targets", []):
            label = target.get("name") or target.get("target")
            params[f"targets.{label}"] = str(target.get("target"))
            _flat(f"targets.{label}.options", target.get("options") or {}, params)
        _flat("latency", plan.get("latency", {}), params)
        _flat("gate", plan.get("gate", {}), params)
    return {k: v[:6000] for k, v in params.items()}


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for t in report.get("targets", []):
        label = t["target"]
        sides = {"baseline": t.get("baseline"), "compressed": t.get("compressed"), "reference": t.get("reference")}
        for side, m in sides.items():
            if not m:
                continue
            for name, value in (m.get("metrics") or {}).items():
                metrics[f"{label}.{side}.{name}"] = float(value)
            for pct in ("p50", "p95", "p99", "mean"):
                if m.get("latency_ms") and pct in m["latency_ms"]:
                    metrics[f"{label}.{side}.latency_{pct}_ms"] = float(m["latency_ms"][pct])
            metrics[f"{label}.{side}.size_bytes"] = float(m["size_bytes"])
        for name, value in (t.get("ratios") or {}).items():
            metrics[f"{label}.{name}"] = float(value)
        for v in t.get("contracts", []):
            metrics[f"{label}.verdict.{v['name']}"] = float(v["measured"])
    return {_key(k): v for k, v in metrics.items()}


def _tags(report: dict[str, Any]) -> dict[str, str]:
    tags = {"edgecraft.passed": str(report.get("passed")).lower(), "edgecraft.status": str(report.get("status")),
            "edgecraft.exit_code": str(report.get("exit_code"))}
    for t in report.get("targets", []):
        tags[_key(f"edgecraft.target.{t['target']}")] = str(t.get("status") or t.get("passed"))
        for v in t.get("contracts", []):
            tags[_key(f"verdict.{t['target']}.{v['name']}")] = (f"{v['status']} (passed={v['passed']}): "
                                                                 f"{v['detail']}")[:5000]
    return tags


def _import_mlflow(uri: str) -> Any:
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        import mlflow
    except ImportError as exc:
        raise PluginError(f"{URI_ENV} is set ({uri}) but mlflow is not installed",
                          hint="pip install 'edgecraft[mlflow]' (mlflow-skinny), or unset the variable") from exc
    return mlflow


def log_report(report: dict[str, Any], report_dir: Path | None, *, uri: str,
               plan: dict[str, Any] | None = None) -> str:
    """Log one report as an MLflow run; returns the run id."""
    mlflow = _import_mlflow(uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    name = os.environ.get(EXPERIMENT_ENV) or f"edgecraft-{report.get('plan_name', 'plan')}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(name)
    run = client.create_run(experiment_id, run_name=f"{report.get('plan_name')} {report.get('created')}",
                            tags=_tags(report))
    run_id = run.info.run_id
    status = "FINISHED"
    try:
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(k, v) for k, v in _params(plan, report).items()]
        now = int(1000 * time.time())
        metrics = [Metric(k, v, now, 0) for k, v in _metrics(report).items()]
        for start in range(0, max(len(params), len(metrics), 1), 100):  # MLflow's batch limits
            client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100],
                             tags=[RunTag("edgecraft.schema", str(report.get("schema")))] if start == 0 else [])
        with tempfile.TemporaryDirectory(prefix="edgecraft-mlflow-") as tmp:
            path = Path(tmp) / "report.json"
            path.write_text(json.dumps(report, indent=2))
            client.log_artifact(run_id, str(path), "reports")
        if report_dir is not None and Path(report_dir).is_dir():
            for f in sorted(Path(report_dir).iterdir()):
                if f.is_file() and f.suffix in {".json", ".xml", ".md", ".html"} and f.name != "report.json":
                    client.log_artifact(run_id, str(f), "reports")
        for t in report.get("targets", []):
            folder = Path(t.get("artifact", ""))
            if folder.is_dir():
                client.log_artifacts(run_id, str(folder), f"artifacts/{_key(t['target'])}")
    except Exception:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run_id, status=status)
    return run_id


@hookimpl
def edgecraft_run_started(plan: dict[str, Any], targets: list[str]) -> None:
    if _enabled():
        _state["plan"] = plan
        _state["targets"] = targets


@hookimpl
def edgecraft_report_ready(report: dict[str, Any], report_dir: Path | None) -> None:
    uri = _enabled()
    if not uri:
        return
    try:
        run_id = log_report(report, report_dir, uri=uri, plan=_state.pop("plan", None))
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"logging the run to MLflow at {uri} failed: {type(exc).__name__}: {exc}") from exc
    _state["last_run_id"] = run_id
