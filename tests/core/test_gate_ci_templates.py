"""The CI templates in integration/ are valid YAML and do what they promise: install, run with reports,
publish them even on failure, and fail the job on a failed contract."""

from __future__ import annotations

from pathlib import Path

import yaml

INTEGRATION = Path(__file__).resolve().parents[2] / "integration"


def test_github_actions_workflow() -> None:
    workflow = yaml.safe_load((INTEGRATION / "github-actions" / "edgecraft-gate.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install" in runs and "edgecraft plugins" in runs
    assert "edgecraft run" in runs and "--report-dir reports" in runs and "steps.reference.outputs.args" in runs
    publish = [s for s in steps if s.get("uses", "").startswith(("actions/upload-artifact", "mikepenz/"))]
    assert len(publish) == 2 and all(s.get("if") == "always()" for s in publish)
    assert publish[1]["with"]["report_paths"] == "reports/junit.xml"
    fail = steps[-1]
    assert fail["if"] == "steps.gate.outputs.exit_code != '0'"
    assert "exit ${{ steps.gate.outputs.exit_code }}" in fail["run"]
    assert workflow["env"]["EDGECRAFT_CACHE_DIR"].endswith(".edgecraft-cache")
    assert workflow["env"]["EDGECRAFT_STRICT_PLUGINS"] == "1"  # CI: a broken plugin fails the gate


def test_gitlab_template_is_strict_about_plugins() -> None:
    template = yaml.safe_load((INTEGRATION / "gitlab" / "edgecraft-gate.gitlab-ci.yml").read_text())
    assert template["variables"]["EDGECRAFT_STRICT_PLUGINS"] == "1"


def test_gitlab_template() -> None:
    template = yaml.safe_load((INTEGRATION / "gitlab" / "edgecraft-gate.gitlab-ci.yml").read_text())
    job = template[".edgecraft-gate"]
    assert any("pip install" in line for line in job["before_script"])
    script = "\n".join(job["script"])
    assert 'edgecraft run "$EDGECRAFT_PLAN" $REFERENCE_ARGS --report-dir reports' in script
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    # the reference download is real Python: compile it
    body = next(line for line in job["script"] if line.startswith("python - <<'PY'"))
    compile(body.split("\n", 1)[1].rsplit("PY", 1)[0], "reference-download", "exec")
