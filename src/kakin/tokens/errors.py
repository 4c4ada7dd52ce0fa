"""Errors of the token counter.

A broken or tampered vocabulary is not something a retry fixes, and kakin never falls back to
downloading one, so the message says exactly which file failed and how to repair the install.
"""

from __future__ import annotations

from kakin.errors import KakinError


class VocabularyError(KakinError):
    """A BPE vocabulary could not be loaded offline (missing, or its sha256 does not match the
    hash tiktoken declares). Counting with that encoding is impossible until it is repaired."""

    status = 500
    code = "tokenizer_unavailable"
