"""The conformance checks of what a plugin adds besides registered classes: its lifecycle hooks (an
integration), its commands, and the devices it registers.

* **Integration** (``edgecraft_run_started``, ``edgecraft_target_finished``, ``edgecraft_report_ready``): each
  hook the plugin implements is called with what a real run passes (the kit's run on ``ort-cpu``, its report
  files written to a folder); it must not raise, must not edit its arguments (the same dicts go to every
  integration) and must not touch the report files (they are the release's record).
* **Commands** (``edgecraft_register_commands``): called with a fresh Typer, it must add at least one command,
  none named like a built-in command or another plugin's, and each must answer ``--help`` (exit 0).
* **Device** (``edgecraft_register_devices``): ``status()`` answers a dict of JSON values without preparing
  anything (no file written), and ``setup(cache_dir, force=...)`` has the documented signature. ``setup`` itself
  is not run: it prepares the device (minutes, downloads); ``edgecraft device setup NAME`` runs it.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgecraft.testing.findings import ConformanceReport, attempt

LIFECYCLE_HOOKS = ("edgecraft_run_started", "edgecraft_target_finished", "edgecraft_report_ready")
COMMANDS_HOOK = "edgecraft_register_commands"


def hook_impls(registry: Any, plugin: str, hooks: Iterable[str]) -> dict[str, Any]:
    """The functions entry-point plugin ``plugin`` implements among ``hooks``, by hook name."""
    pm = registry.plugin_manager
    found = {}
    for hook in hooks:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if (pm.get_name(impl.plugin) or "") == plugin:
                found[hook] = impl.function
    return found


class IntegrationCheck:
    def __init__(self, registry: Any, plugin: str, work: Path) -> None:
        from edgecraft.plugin_loading import provenance_of

        self.registry, self.plugin, self.work = registry, plugin, work
        self.report = ConformanceReport("integration", plugin, str(provenance_of(plugin, registry.provenance)))

    def run(self) -> ConformanceReport:
        from edgecraft.testing.contract_check import SIZE_CONTRACT, kit_run
        from edgecraft.verify.reports import ReportFiles, write_reports

        r = self.report
        impls = hook_impls(self.registry, self.plugin, LIFECYCLE_HOOKS)
        ok, report = attempt(r, "run", "the kit's run (no hook called)",
                             lambda: kit_run(self.registry, [dict(SIZE_CONTRACT)], self.work / "run"))
        if not ok:
            return r
        report_dir = self.work / "reports"
        written = write_reports(report, ReportFiles(json=report_dir / "report.json", junit=report_dir / "junit.xml",
                                                    markdown=report_dir / "summary.md"))
        args = {"edgecraft_run_started": {"plan": _plan_json(self.registry, self.work / "run"), "targets": ["ort-cpu"]},
                "edgecraft_target_finished": {"target": report.targets[0].model_dump(mode="json")},
                "edgecraft_report_ready": {"report": report.to_json(), "report_dir": report_dir}}
        for hook in LIFECYCLE_HOOKS:
            if hook in impls:
                self._call(hook, impls[hook], args[hook], written)
        return r

    def _call(self, hook: str, function: Any, kwargs: dict[str, Any], files: list[Path]) -> None:
        r = self.report
        given = {k: copy.deepcopy(v) for k, v in kwargs.items()}
        before = _digests(files)
        wanted = [a for a in inspect.signature(function).parameters if a in given]
        ok, _ = attempt(r, hook, "with what a run passes", lambda: function(**{a: given[a] for a in wanted}))
        if not ok:
            return
        edited = [k for k in wanted if given[k] != kwargs[k]]
        if edited:
            r.add("violation", hook, f"edited its argument(s) {edited}; expected them untouched (the same objects "
                  "go to every integration after it)")
            return
        after = _digests(files)
        if after != before:
            changed = sorted(str(p.name) for p in files if before.get(p) != after.get(p))
            r.add("violation", hook, f"changed or removed report file(s) {changed}; expected the run's reports "
                  "untouched (they are the release's record)")
            return
        r.add("ok", hook, f"accepts {sorted(wanted) or 'no arguments'}, raises nothing, edits nothing")


def _plan_json(registry: Any, folder: Path) -> dict[str, Any]:
    """The kit plan's JSON, as ``edgecraft_run_started`` gets it (validated)."""
    from edgecraft.plan.loading import validate_plan
    from edgecraft.testing.harness import kit_plan
    from edgecraft.testing.models import CNN

    raw = kit_plan("none", {}, CNN, folder, ["ort-cpu"], {})
    raw["steps"] = []
    return validate_plan(raw, registry).model_dump(mode="json", by_alias=True)


def _digests(files: list[Path]) -> dict[Path, str | None]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None for p in files}


class CommandCheck:
    def __init__(self, registry: Any, plugin: str, builtin: frozenset[str] | None) -> None:
        from edgecraft.plugin_loading import provenance_of

        self.registry, self.plugin, self.builtin = registry, plugin, builtin
        self.report = ConformanceReport("commands", plugin, str(provenance_of(plugin, registry.provenance)))

    def run(self) -> ConformanceReport:
        r = self.report
        mine = hook_impls(self.registry, self.plugin, [COMMANDS_HOOK])[COMMANDS_HOOK]
        ok, commands = attempt(r, COMMANDS_HOOK, "called with a fresh Typer", lambda: _commands(mine, self.plugin))
        if not ok:
            return r
        if not commands:
            r.add("violation", COMMANDS_HOOK, "added no command; expected @cli.command() or cli.add_typer(...) (or "
                  "drop the hook)")
            return r
        others: dict[str, str] = {}
        pm = self.registry.plugin_manager
        for impl in getattr(pm.hook, COMMANDS_HOOK).get_hookimpls():
            other = pm.get_name(impl.plugin) or ""
            if other != self.plugin:
                try:
                    others.update({name: other for name in _commands(impl.function, other)})
                except Exception:  # another plugin's fault is not this one's
                    continue
        for name, command in commands.items():
            if self.builtin is not None and name in self.builtin:
                r.add("violation", COMMANDS_HOOK, f"adds the command {name!r}, which is built in; expected a name "
                      "of its own (the plugin would add no command at all)")
                continue
            if name in others:
                r.add("violation", COMMANDS_HOOK, f"adds the command {name!r}, which plugin {others[name]!r} adds "
                      "too; expected a unique name")
                continue
            ok, code = attempt(r, f"{name} --help", "", lambda c=command, n=name: _help_exit(c, n))
            if ok and code != 0:
                r.add("violation", f"{name} --help", f"exited {code}; expected 0 with the command's help")
            elif ok:
                r.add("ok", COMMANDS_HOOK, f"adds {name!r}, unique, answers --help")
        if self.builtin is None:
            r.add("note", COMMANDS_HOOK, "the built-in command names were not given; `edgecraft plugin check` "
                  "checks them too")
        return r


def _commands(hook: Any, plugin: str) -> dict[str, Any]:
    """Call one plugin's commands hook with a fresh Typer and convert what it added, as the CLI does."""
    import typer

    cli = typer.Typer(name=plugin, add_completion=False)
    hook(cli=cli)
    if not cli.registered_commands and not cli.registered_groups:
        return {}
    return dict(typer.main.get_group(cli).commands)


def _help_exit(command: Any, name: str) -> int:
    """``edgecraft NAME --help``'s exit code, the command mounted under a root group as the CLI mounts it."""
    import contextlib
    import io

    import typer

    app = typer.Typer(add_completion=False)

    @app.callback()
    def root() -> None:
        """The stand-in for the ``edgecraft`` root group."""

    group = typer.main.get_group(app)
    group.add_command(command, name)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            result = group.main([name, "--help"], prog_name="edgecraft", standalone_mode=False)
        except SystemExit as exc:
            return int(exc.code or 0)
    return int(result) if isinstance(result, int) else 0


class DeviceCheck:
    def __init__(self, registry: Any, name: str, work: Path) -> None:
        provided = registry.devices[name]
        self.cls, self.name, self.work = provided.obj, name, work
        self.report = ConformanceReport("device", name, str(provided.provenance))

    def run(self) -> ConformanceReport:
        r = self.report
        ok, device = attempt(r, "__init__()", "", self.cls)
        if not ok:
            return r
        cache = self.work / "device-cache"
        cache.mkdir()
        ok, status = attempt(r, "status()", "with an empty cache folder", lambda: device.status(cache))
        if ok:
            if not isinstance(status, dict) or not all(isinstance(k, str) for k in status):
                r.add("violation", "status()", f"returned {type(status).__name__}; expected a dict with str keys")
            elif any(cache.iterdir()):
                r.add("violation", "status()", f"wrote {sorted(p.name for p in cache.iterdir())} into the cache "
                      "folder; expected a read-only look (setup() prepares)")
            else:
                try:
                    json.dumps(status, allow_nan=False)
                    r.add("ok", "status()", f"a JSON dict ({sorted(status)[:6]}), nothing written")
                except (TypeError, ValueError) as exc:
                    r.add("violation", "status()", f"is not JSON ({exc}); `edgecraft plugins` prints it")
        try:
            inspect.signature(device.setup).bind(cache, force=False)
            r.add("ok", "setup()", "accepts (cache_dir, force=...); not run (it prepares the device)")
        except TypeError as exc:
            r.add("violation", "setup()", f"cannot be called as setup(cache_dir, force=False): {exc}")
        return r
