"""The ``kakin`` command line.

The root Typer app lives here and nothing else does: each command group is a module of its
own that exposes a Typer app (or plain commands) and is registered below with one line, so
packages can add their commands without touching each other's code. ``main()`` runs the app
behind one error handler (``kakin.cli.output.run_app``) that turns every user error into a
one-line message and exit code 2.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="kakin",
    help="Pay-as-you-go cost control for AI APIs: prices, token counts, estimates and budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console entry point (``kakin = "kakin.cli:main"``)."""
    from kakin.cli.output import run_app

    run_app(app)


# Command groups register here, one line each: `from kakin.cli import <module>  # noqa: E402`
# with the module attaching itself to `app` (see kakin.cli.estimate_cmd for the pattern).
