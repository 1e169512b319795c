"""Commands that read a plan without building anything: ``schema``, ``validate``, ``compile``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from edgecraft.cli.app import app
from edgecraft.cli.options import PlanArg
from edgecraft.cli.session import CliSession


@app.command()
def schema(ctx: typer.Context) -> None:
    """Print the plan's JSON Schema, including every installed strategy's params and target's options."""
    from edgecraft.plan.schema import plan_json_schema

    sys.stdout.write(json.dumps(plan_json_schema(CliSession.of(ctx).registry()), indent=2) + "\n")


@app.command()
def validate(ctx: typer.Context, plan: PlanArg,
             no_compile: Annotated[bool, typer.Option(
                 "--no-compile", help="Check the schema and the installed plugins only; skip compiling every "
                 "target (which loads the model and the data, but builds nothing).")] = False) -> None:
    """Check a plan as `run` would before building: schema, plugins, and every target compiled.

    "ok" means `run` will not refuse the plan at compile time: every step bound to every target, the
    data bound to the model's inputs, contracts checked against the metrics. Nothing is built or trained.
    """
    from edgecraft.plan.loading import load_plan

    session = CliSession.of(ctx)
    registry = session.registry()
    loaded, base_dir = load_plan(plan, registry)
    if loaded.search is not None and loaded.search.space:
        from edgecraft.search.space import resolve_space

        resolve_space(loaded, registry, source=str(plan))  # steps, params and bounds; `search` also compiles them
    checked = "schema and plugins"
    if not no_compile:
        from edgecraft.compile.checks import compile_all, prepare

        compile_all(prepare(loaded, registry, base_dir), [t.label for t in loaded.targets])
        checked = "schema, plugins and every target compiled"
    session.out.print(f"[green]ok[/green] {plan}: {len(loaded.steps)} step(s), targets "
                      f"{[t.label for t in loaded.targets]}, {len(loaded.contracts)} contract(s) ({checked})")
    from edgecraft.compile.checks import not_checked_without_building

    session.out.print("not checked without building (`edgecraft run` checks these):", highlight=False)
    for item in not_checked_without_building(loaded, compiled=not no_compile):
        session.out.print(f"  - {item}", highlight=False, markup=False)


@app.command("compile")
def compile_command(
        ctx: typer.Context,
        plan: PlanArg,
        target: Annotated[list[str], typer.Option("--target", "-t", help="Target label (repeatable).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the compiled plan as JSON.")] = False) -> None:
    """Resolve the plan for a target and print the concrete pipeline (nothing is built)."""
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.plan.loading import load_plan

    session = CliSession.of(ctx)
    registry = session.registry()
    loaded, base_dir = load_plan(plan, registry)
    compiled = compile_all(prepare(loaded, registry, base_dir), target)
    if as_json:
        sys.stdout.write(json.dumps({k: v.model_dump(mode="json", by_alias=True) for k, v in compiled.items()},
                                    indent=2) + "\n")
        return
    for cp in compiled.values():
        for line in cp.describe():
            session.out.print(line, highlight=False, markup=False)
