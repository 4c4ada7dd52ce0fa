"""``kakin serve``: run the metering gateway and the dashboard (``/ui``).

Configuration comes from kakin.toml (or ``--config``) plus environment variables; see
docs/config.md. With no providers configured, the built-in simulated provider answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    config: Annotated[
        Path | None, typer.Option(help="TOML file (default: $KAKIN_CONFIG or ./kakin.toml)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on (server.host)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="port to listen on (server.port)")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="gateway processes sharing the port (more than 1 needs shared accounting; see docs/scaling.md)",
        ),
    ] = 1,
) -> None:
    """Serve the OpenAI, Anthropic and Gemini APIs through kakin, and the dashboard at /ui,
    until interrupted."""
    from kakin.config import load_settings
    from kakin.server import serve as run

    settings = load_settings(config)
    server = settings.server.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    run(settings.model_copy(update={"server": server}), workers=workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
