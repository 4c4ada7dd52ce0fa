"""Errors shared by every layer.

Each carries what a person needs to act: what failed, which limit or input, how to fix it.
``status`` is the HTTP status the gateway and admin API answer with; the CLI prints
``str(error)`` on one line and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KakinError(Exception):
    """Base of every error kakin raises on purpose."""

    status: int = 400
    code: str = "kakin_error"
    # OpenAI's error "type" when it is more precise than the status's usual one
    # (a 429 says whether requests or tokens ran out).
    kind: str | None = None
    # When resending the same request may succeed (a 429's Retry-After); None: no header.
    retry_after_seconds: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple:
        # Rebuilt without calling __init__, whose signature differs between subclasses, so an
        # error crosses a process boundary (the ledger writer process) with all its fields.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[KakinError], args: tuple, fields: dict) -> KakinError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(fields)
    return error


class InvalidInput(KakinError):
    """Malformed, negative, absurd or otherwise unusable input. Nothing was changed."""

    status = 422
    code = "invalid_request"


class NotFound(KakinError):
    status = 404
    code = "not_found"


class Conflict(KakinError):
    """The request contradicts what already happened (e.g. an idempotency key reused with
    different parameters, or settling a voided reservation)."""

    status = 409
    code = "conflict"


class UnknownModel(NotFound):
    code = "model_not_found"

    def __init__(self, model: str, known: Iterable[str], provider: str | None = None) -> None:
        self.model = model
        self.suggestions = closest(model, known)
        where = f" for provider {provider!r}" if provider else ""
        hint = f"; closest known: {', '.join(self.suggestions)}" if self.suggestions else ""
        super().__init__(
            f"unknown model {model!r}{where}{hint} (add it in kakin.toml under [catalog.models] to price it)"
        )


def closest(name: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Closest known names, for 'did you mean' hints."""
    names = list(dict.fromkeys(known))
    lowered = name.lower()
    starts = [k for k in names if k.lower().startswith(lowered) or lowered.startswith(k.lower())]
    fuzzy = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    return list(dict.fromkeys(fuzzy + sorted(starts, key=len)))[:n]
