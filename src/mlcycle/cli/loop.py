"""`mlcycle loop`: continuous training — run it, look at it, trigger it, resume it.

Example: mlcycle loop --once   (from cron)   ·   mlcycle loop status --json
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli import loop_backtest
from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    handle_errors,
    load_project,
    print_json,
)

app = typer.Typer(
    help="Continuous training: triggers → policy → retrain → gate → shadow → promote → watch "
    "→ automatic rollback. Without a subcommand, runs the loop (waking every loop.poll).\n\n"
    "Example: mlcycle loop --once   (one tick, for cron)",
    invoke_without_command=True,
)
app.command("backtest")(loop_backtest.backtest)


def _line(report: dict[str, Any]) -> str:
    """One tick, for a person reading the service's output."""
    status = report.get("status", "?")
    run = report.get("run")
    if run is not None:
        verdict = run.get("watch_verdict") or run.get("shadow_verdict") or {}
        extra = f" — {verdict['reason']}" if verdict.get("status") == "pending" else ""
        if run.get("error"):
            extra = f" — error (attempt {run['attempts']}): {run['error']}"
        return f"{status}: run {run['id'][:8]} ({run['trigger']}) is {run['state']}{extra}"
    decision = report.get("decision")
    if decision is not None:
        return f"{status}: {decision['reason']}"
    return f"{status}: {report.get('reason', '')}".rstrip(": ")


@app.callback()
@handle_errors
def loop(
    ctx: typer.Context,
    once: bool = typer.Option(
        False,
        "--once",
        help="One tick: advance the run in flight or "
        "evaluate the triggers once, then exit (for cron).",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the loop: every loop.poll, advance the run in flight or ask the policy.

    Two loop processes on one store share the work through a lease: one acts,
    the other waits. Ctrl-C or SIGTERM stops after the current tick.

    Example: mlcycle loop --once --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlcycle.loop.machine import Engine
    from mlcycle.train.tracking.process import install_sigterm

    project = load_project(spec)
    engine = Engine(project)
    if once:
        report = engine.tick()
        if as_json:
            print_json(report)
        else:
            console.print(_line(report), highlight=False)
        return
    install_sigterm()  # SIGTERM unwinds as SystemExit: the lease is released below
    poll = project.spec.loop.poll.total_seconds()
    try:
        while True:
            try:
                report = engine.tick()
            except Exception as exc:  # a service keeps going; the next tick tries again
                message = getattr(exc, "message", f"{type(exc).__name__}: {exc}")
                report = {"model": engine.name, "status": "error", "reason": message}
            if as_json:
                import json

                typer.echo(json.dumps(report, default=str))
            else:
                console.print(_line(report), highlight=False)
            time.sleep(poll)
    except (KeyboardInterrupt, SystemExit):
        engine.runs.release(engine.name, engine.holder)


def _status(project: Any) -> dict[str, Any]:
    from mlcycle.loop.state import LoopStore

    runs = LoopStore(project.store)
    name = project.name
    registry = project.registry
    active = runs.active(name)
    recent = runs.runs(name, limit=1)
    return {
        "model": name,
        "stopped": runs.breaker(name),
        "lease": runs.lease(name),
        "champion": registry.alias_version(name, "champion") if name in registry.models() else None,
        "challenger": registry.alias_version(name, "challenger")
        if name in registry.models()
        else None,
        "active": None if active is None else active.to_dict(),
        "last": recent[0].to_dict() if recent else None,
        "pending_triggers": runs.pending(name),
        "mode": project.spec.loop.mode,
    }


@app.command()
@handle_errors
def status(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """Whether the loop is stopped, who holds the lease, the run in flight and the last one.

    Example: mlcycle loop status --json
    """
    state = _status(load_project(spec))
    if as_json:
        print_json(state)
        return
    if state["stopped"]:
        console.print(
            f"[bold red]STOPPED[/] since {state['stopped']['stopped_at']}: "
            f"{state['stopped']['reason']}",
            highlight=False,
        )
    else:
        console.print("running (not stopped)")
    lease = state["lease"]
    console.print(
        f"lease: {lease['holder']} until {lease['expires_at']}" if lease else "lease: nobody",
        highlight=False,
    )
    console.print(f"champion: v{state['champion']}  challenger: v{state['challenger']}")
    for key, title in (("active", "in flight"), ("last", "last run")):
        run = state[key]
        if run is not None:
            console.print(
                f"{title}: {run['id'][:8]} {run['state']} ({run['trigger']}: {run['reason']})",
                highlight=False,
            )
    for request in state["pending_triggers"]:
        console.print(f"pending trigger: {request['reason']} (by {request['requested_by']})")


@app.command()
@handle_errors
def history(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs, newest first."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """The loop's runs, newest first, with every state change.

    Example: mlcycle loop history -n 5 --json
    """
    from mlcycle.loop.state import LoopStore

    project = load_project(spec)
    runs = LoopStore(project.store)
    found = runs.runs(project.name, limit=limit)
    if as_json:
        print_json([r.to_dict() | {"events": runs.events(r.id)} for r in found])
        return
    table = Table("run", "trigger", "state", "v", "from", "started", "reason")
    for r in found:
        table.add_row(
            r.id[:8],
            r.trigger,
            r.state,
            "" if r.candidate_version is None else str(r.candidate_version),
            "" if r.previous_champion is None else str(r.previous_champion),
            r.created_at[:19],
            r.reason,
        )
    console.print(table)
    for r in found[:3]:
        for e in runs.events(r.id):
            console.print(
                f"  {r.id[:8]} {e['at'][:19]} {e['from_state'] or '-'} → {e['to_state']}: "
                f"{e['detail']}",
                highlight=False,
            )


@app.command()
@handle_errors
def trigger(
    reason: str = typer.Option(..., "--reason", "-r", help="Why retrain now (recorded)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Ask for a retrain; the next tick takes it (the policy's cooldown and budget apply).

    Example: mlcycle loop trigger --reason "fares changed on 1 July"
    """
    from mlcycle.loop.state import LoopStore, system_clock
    from mlcycle.registry.models import current_actor

    project = load_project(spec)
    request_id = LoopStore(project.store).request(
        project.name, reason, by=current_actor(), at=system_clock()
    )
    if as_json:
        print_json({"id": request_id, "model": project.name, "reason": reason})
        return
    console.print(f"trigger {request_id} queued: the next `mlcycle loop` tick takes it")


@app.command()
@handle_errors
def resume(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """Clear the circuit breaker after automatic rollbacks stopped the loop.

    Example: mlcycle loop resume
    """
    from mlcycle.loop.state import LoopStore, system_clock

    project = load_project(spec)
    resumed = LoopStore(project.store).resume(project.name, at=system_clock())
    if as_json:
        print_json({"model": project.name, "resumed": resumed})
        return
    console.print("loop resumed" if resumed else "the loop was not stopped; nothing to resume")
