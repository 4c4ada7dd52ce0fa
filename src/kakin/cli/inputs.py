"""What CLI commands read: dates, modes and input files, each failure a one-line message.

A file that is missing, a directory, not UTF-8, or not valid JSON/TOML raises ``InvalidInput``
naming the file and what is wrong with it (with the line and column for syntax errors), so
the root command prints it on one line and exits with code 2.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from kakin.errors import InvalidInput


def parse_at(raw: str | None) -> datetime | None:
    """``--at``: an ISO date (midnight UTC) or date-time (naive = UTC); None for now."""
    if raw is None:
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--at must be a date (YYYY-MM-DD) or ISO date-time, got {raw!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_date(raw: str | None, what: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a date (YYYY-MM-DD), got {raw!r}") from None


def given_flags(flags: Sequence[tuple[str, object]]) -> list[str]:
    """The names of the ``(name, value)`` flags that were given (value not None), in order."""
    return [name for name, value in flags if value is not None]


def require_exactly_one(flags: Sequence[tuple[str, object]], message: str) -> None:
    """Raise ``InvalidInput(message)``, naming the flags given, unless exactly one was."""
    given = given_flags(flags)
    if len(given) != 1:
        raise InvalidInput(message + (f"; got {', '.join(given)}" if given else ""))


def read_chat_request(path: str) -> dict[str, Any]:
    """A chat request body (``messages`` and optional ``tools``/``max_tokens``/``model``) from
    a JSON file holding either a list of messages or a request body."""
    from kakin.estimate import request_from_json

    return request_from_json(read_json_file(path, "messages file"), where=path)


def check_mode(mode: str) -> str:
    from kakin.catalog import MODES

    if mode not in MODES:
        raise InvalidInput(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def read_text_file(path: str, what: str) -> str:
    """A UTF-8 file's text, or a one-line error naming the file."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{what} {path!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} {path!r} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} {path!r} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path!r}: {exc.strerror}") from None


def read_json_file(path: str, what: str) -> Any:
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} {path!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def read_toml_file(path: str, what: str) -> dict[str, Any]:
    text = read_text_file(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{what} {path!r} is not valid TOML: {exc}") from None
