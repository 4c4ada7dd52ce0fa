"""Shared output helpers for every CLI command (filled in below)."""

from __future__ import annotations

import sys

import typer


def run_app(app: typer.Typer) -> None:
    """Run ``app`` as the console entry point."""
    sys.exit(app())
