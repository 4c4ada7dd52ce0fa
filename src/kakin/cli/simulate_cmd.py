"""``kakin simulate``: run the built-in simulated provider.

Point kakin's providers (or an SDK directly) at it to use every feature offline. The
fault grammar of ``--faults`` and of the per-request ``x-kakin-simulate`` header is in
docs/providers.md.
"""

from __future__ import annotations

from typing import Annotated

import typer


def simulate(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8788,
    key: Annotated[
        str,
        typer.Option(
            "--key", help="require this API key (default: accept any key)", envvar="KAKIN_SIMULATOR_KEY"
        ),
    ] = "",
    faults: Annotated[
        str, typer.Option(help="faults for every request, e.g. 'error-rate=0.05; latency=20ms'")
    ] = "",
    seed: Annotated[int, typer.Option(help="seed of the error-rate sequence")] = 0,
) -> None:
    """Serve the simulated OpenAI / Azure / Anthropic / Gemini provider until interrupted."""
    from kakin.providers.simulator import SimulatorConfig, serve

    config = SimulatorConfig.from_spec(faults, required_key=key, seed=seed)

    def listening(url: str) -> None:  # the real port, also when --port 0 let the system choose
        typer.echo(f"kakin simulated provider on {url} (OpenAI /v1, Anthropic /v1/messages, Gemini /v1beta)")

    serve(config, host=host, port=port, listening=listening)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
