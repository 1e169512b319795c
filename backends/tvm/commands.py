"""``edgecraft device list|setup|serve|status``: the TVM backend's commands (``edgecraft_register_commands``).

Devices are prepared once (``setup``), then either started by each run (``device: emulated``) or served as
boards behind TVM's RPC tracker (``serve``, ``status``). This module stays light (``edgecraft --help`` imports
it): TVM and the device builders are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from edgecraft.cli.output import safe
from edgecraft.cli.session import CliSession
from rich.table import Table

if TYPE_CHECKING:
    from edgecraft.devices import Device

device_app = typer.Typer(help="Prepare devices that targets run on (e.g. an emulated aarch64 board).",
                         no_args_is_help=True)


def _device(session: CliSession, name: str, *, hint: str | None = None) -> Device:
    from edgecraft.errors import InputError

    registry = session.registry()
    if name not in registry.devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(registry.devices)) or 'none'}",
                         hint=hint)
    device: Device = registry.devices[name].obj()
    return device


@device_app.command("list")
def device_list(ctx: typer.Context) -> None:
    """List the devices installed plugins can prepare, and whether each is ready."""
    session = CliSession.of(ctx)
    registry = session.registry()
    table = Table(title="devices")
    for column in ("name", "distribution", "summary", "status"):
        table.add_column(column)
    for name, provided in sorted(registry.devices.items()):
        table.add_row(name, provided.provenance.distribution, provided.summary,
                      json.dumps(provided.obj().status()))
    session.out.print(table)


@device_app.command("setup")
def device_setup(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Device name (see `edgecraft device list`).")],
        cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where devices are kept.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Rebuild even if already prepared.")] = False) -> None:
    """Prepare a device once (cached), e.g. `edgecraft device setup arm64-emulated`."""
    session = CliSession.of(ctx)
    device = _device(session, name, hint="devices come with backend extras, e.g. pip install 'edgecraft[tvm]'")
    path = device.setup(cache_dir, force=force)
    _install_backend_packages(session, name, cache_dir, force)
    session.out.print(f"[green]ready[/green] {name}: {path}")


def _install_backend_packages(session: CliSession, name: str, cache_dir: Path | None, force: bool) -> None:
    """Every registered backend's packages for this board (``Backend.board_packages``), e.g. ONNX Runtime's
    aarch64 wheel: the board is shared, each runtime brings its own group."""
    from edgecraft.boards import DEVICE_NAME, EmulatedDevice, install_board_packages

    if name != DEVICE_NAME:
        return
    registry = session.registry()
    for backend_name in sorted(registry.backends):
        for group, requirements in registry.backend(backend_name).board_packages(name).items():
            install_board_packages(EmulatedDevice.at(cache_dir), group, requirements, force=force, progress=print)


@device_app.command("serve")
def device_serve(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Device name, e.g. arm64-emulated.")],
        tracker: Annotated[str, typer.Option("--tracker", metavar="HOST:PORT",
                                             help="The TVM RPC tracker to register with "
                                                  "(python -m tvm.exec.rpc_tracker --host H --port P).")],
        key: Annotated[str, typer.Option("--key", help="The device key targets ask the tracker for "
                                                       "(options.tracker_key).")],
        host: Annotated[str, typer.Option("--host", help="Address the board's RPC server binds to. Keep it "
                                                         "loopback or a private network: TVM RPC has no "
                                                         "authentication.")] = "127.0.0.1",
        port: Annotated[int | None, typer.Option("--port", help="Port of the board's RPC server (default: a free "
                                                                "one).")] = None,
        threads: Annotated[int, typer.Option("--threads", help="Runtime threads on the board.")] = 1,
        board_name: Annotated[str | None, typer.Option("--name", help="A name for this board (reports show it).")
                              ] = None,
        log: Annotated[Path | None, typer.Option("--log", help="Write the board's RPC server log here.")] = None,
        cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where devices are kept.")] = None,
        ) -> None:
    """Serve a prepared device as a board behind a TVM RPC tracker, in the foreground (Ctrl-C stops):
    targets with device: tracker and this key get it from the tracker's queue."""
    from edgecraft.backends.tvm.boards import TrackerBoard
    from edgecraft.errors import InputError

    device = _device(CliSession.of(ctx), name)
    if not isinstance(device, TrackerBoard):
        raise InputError(f"device {name!r} cannot be served to a tracker")
    code = device.serve(cache_dir, tracker=tracker, key=key, host=host, port=port, threads=threads,
                        name=board_name, log_path=log)
    raise typer.Exit(code)


@device_app.command("status")
def device_status(
        ctx: typer.Context,
        tracker: Annotated[str, typer.Option("--tracker", metavar="HOST:PORT", help="The TVM RPC tracker.")],
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List a TVM RPC tracker's queue (boards per key: total, free, pending requests) and its boards."""
    queue, boards = _tracker_state(tracker)
    totals: dict[str, int] = {}
    for board in boards:
        board_key = str(board.get("key", "")).removeprefix("server:")
        totals[board_key] = totals.get(board_key, 0) + 1
    if as_json:
        sys.stdout.write(json.dumps({"tracker": tracker, "queue": {k: {**v, "total": totals.get(k, 0)}
                                                                   for k, v in queue.items()},
                                     "boards": boards}, indent=2) + "\n")
        return
    out = CliSession.of(ctx).out
    table = Table(title=f"TVM RPC tracker {tracker}: queue")
    for column in ("key", "boards", "free", "pending requests"):
        table.add_column(column)
    for queue_key in sorted(set(queue) | set(totals)):
        info = queue.get(queue_key, {})
        table.add_row(safe(queue_key), str(totals.get(queue_key, 0)), str(info.get("free", 0)),
                      str(info.get("pending", 0)))
    out.print(table)
    listing = Table(title="boards")
    for column in ("key", "address"):
        listing.add_column(column)
    for board in boards:
        address = board.get("addr") or ["?", "?"]
        listing.add_row(safe(str(board.get("key", "")).removeprefix("server:")), safe(f"{address[0]}:{address[1]}"))
    out.print(listing)


def _tracker_state(tracker: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The tracker's queue (key -> free/pending) and its boards, from TVM's tracker summary."""
    from edgecraft.errors import InputError, RuntimeFailure

    try:
        from edgecraft.backends.tvm.rpc_server import tracker_summary

        summary = tracker_summary(tracker)
    except ImportError as exc:
        raise InputError("device status needs TVM", hint="pip install 'edgecraft[tvm]'") from exc
    except (OSError, RuntimeError) as exc:
        raise RuntimeFailure(f"cannot read the TVM RPC tracker at {tracker}: {type(exc).__name__}: {exc}") from exc
    queue_info, server_info = summary.get("queue_info", {}), summary.get("server_info", [])
    queue = {str(k): dict(v) for k, v in queue_info.items()} if isinstance(queue_info, dict) else {}
    boards = [dict(b) for b in server_info] if isinstance(server_info, list) else []
    return queue, boards
