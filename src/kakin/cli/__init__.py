"""The ``kakin`` command line.

The root Typer app lives here and nothing else does. Each command group is a module of its
own with a ``register(app)`` function, listed once in ``COMMAND_MODULES`` below, so packages
add their commands without touching each other's code::

    # src/kakin/cli/keys.py
    group = typer.Typer(help="Virtual API keys.")

    @group.command("create")
    def create(...): ...

    def register(app: typer.Typer) -> None:
        app.add_typer(group, name="keys")

Command modules import their heavy dependencies inside the command functions, so that
``kakin --help`` and the quick commands stay fast.

Errors: the root group (``kakin.cli.output.KakinGroup``) turns every user error — a
``KakinError``, a ``MoneyError``, a settings validation error, or a bad option value — into
one line on stderr and exit code 2, both under ``main()`` and under ``CliRunner``.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from kakin.cli.output import KakinGroup, run_app

app = typer.Typer(
    name="kakin",
    cls=KakinGroup,
    help="Pay-as-you-go cost control for AI APIs: prices, token counts, estimates and budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One line per command module; each has `register(app: typer.Typer) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "kakin.cli.prices_cmd",  # models, price
    "kakin.cli.tokens_cmd",  # tokens
    "kakin.cli.estimate_cmd",  # estimate, scenario, image-job, breakeven
    "kakin.cli.forecast_cmd",  # forecast
    "kakin.cli.demo",  # demo
    "kakin.cli.alerts_cmds",  # alerts
    "kakin.cli.ledger_cmds",  # org, project, keys, credits, budget, ledger, tier
    "kakin.cli.report_cmds",  # report, usage
    "kakin.cli.reconcile_cmd",  # reconcile
    "kakin.cli.invoice_cmds",  # invoice
    "kakin.cli.simulate_cmd",  # simulate
    "kakin.cli.serve_cmd",  # serve
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"kakin {version('kakin')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show kakin's version and exit."),
    ] = False,
) -> None:
    """Pay-as-you-go cost control for AI APIs: prices, token counts, estimates and budgets."""


def main() -> None:
    """Console entry point (``kakin = "kakin.cli:main"``)."""
    run_app(app)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)
