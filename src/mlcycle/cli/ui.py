"""`mlcycle ui`: serve the web dashboard of the project."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mlcycle.cli.common import SpecOption, console, handle_errors, load_project


@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; loopback by default."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="MLCYCLE_UI_TOKEN",
        help="Write token (read + promote/rollback). Required to bind beyond loopback. "
        "Env: MLCYCLE_UI_TOKEN.",
    ),
    read_token: str | None = typer.Option(
        None,
        "--read-token",
        envvar="MLCYCLE_UI_READ_TOKEN",
        help="Optional read-only token for viewers. Env: MLCYCLE_UI_READ_TOKEN.",
    ),
    token_name: str = typer.Option(
        "ui-token",
        "--token-name",
        envvar="MLCYCLE_UI_TOKEN_NAME",
        help="Who promotions and rollbacks made with the write token are recorded as "
        "in the alias history. Env: MLCYCLE_UI_TOKEN_NAME.",
    ),
    spec: Path = SpecOption,
) -> None:
    """Serve the dashboard: runs, models, lineage, data and monitoring, in a browser.

    Example: mlcycle ui --port 8080   (then open http://127.0.0.1:8080)
    """
    import uvicorn

    from mlcycle.ui import AccessPolicy, check_binding, create_app

    check_binding(host, token, read_token)
    project = load_project(spec)
    project.store  # noqa: B018 - open (and migrate) the store before the first request
    app = create_app(
        project, AccessPolicy(write_token=token, read_token=read_token, token_name=token_name)
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"mlcycle ui for {project.name} on http://{shown}:{port}"
        + (" (token required)" if token else " (loopback, no token)"),
        highlight=False,
    )
    log_level = "info" if os.environ.get("MLCYCLE_DEBUG") else "warning"
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
