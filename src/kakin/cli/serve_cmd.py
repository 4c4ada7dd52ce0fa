"""``kakin serve``: run the metering gateway.

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
) -> None:
    """Serve the OpenAI, Anthropic and Gemini APIs through kakin until interrupted."""
    from kakin.config import load_settings
    from kakin.gateway import serve as run

    settings = load_settings(config)
    server = settings.server.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    settings = settings.model_copy(update={"server": server})
    upstreams = ", ".join(f"{p.name} ({p.kind})" for p in settings.providers) or "built-in simulator"
    typer.echo(
        f"kakin gateway on http://{server.host}:{server.port} → {upstreams}; database {_safe(settings.database.url)}"
    )
    run(settings)


def _safe(url: str) -> str:
    """A database URL without its password, for display."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
