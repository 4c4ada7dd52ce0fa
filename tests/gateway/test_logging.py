"""``kakin serve``'s log: the most verbose level, JSON lines and the access log on, requests
made with kakin keys (valid and not) through every SDK and the admin API, an upstream with a
key of its own — and not one key, key hash or admin key in anything it printed. At start it
warns about a provider whose key variable is not set."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from conftest import free_port, kakin_command
from kakin.config import LoggingSettings, ProviderSettings, load_settings
from kakin.errors import InvalidInput
from kakin.ledger import Ledger

from .conftest import random_phone
from .test_crash import wait_healthy

PROVIDER_KEY = "sk-upstream-6b1f0c93d2e84a77b5c1"
ADMIN_KEY = "admin-secret-3e9a51c7f0"
CONFIG = """
[server]
access_log = true

[logging]
level = "debug"
format = "json"

[[providers]]
name = "sim"
kind = "simulator"
base_url = "builtin"
api_key_env = "KAKIN_TEST_SIM_KEY"

[[providers]]
name = "azure-east"
kind = "azure"
base_url = "http://127.0.0.1:9"
api_key_env = "KAKIN_TEST_UNSET_AZURE_KEY"
"""


def test_debug_json_logs_with_access_lines_never_show_a_key(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    with Ledger.open(database) as ledger:
        org = ledger.create_org("logged", phone=random_phone())
        ledger.grant(org.id, "free_trial", "5", idempotency_key="trial")
        project = ledger.create_project(org.id, "app")
        _, key = ledger.create_key(project.id, "server")
        old, revoked = ledger.create_key(project.id, "old")
        ledger.revoke_key(old.id)
    (tmp_path / "kakin.toml").write_text(CONFIG)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAKIN_")}
    env |= {
        "KAKIN_CONFIG": str(tmp_path / "kakin.toml"),
        "KAKIN_DATABASE_URL": database,
        "KAKIN_PORT": str(port),
        "KAKIN_ADMIN_KEY": ADMIN_KEY,
        "KAKIN_TEST_SIM_KEY": PROVIDER_KEY,
    }
    process = subprocess.Popen(
        kakin_command("serve"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        chat = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        assert chat.choices[0].message.content
        anthropic.Anthropic(base_url=url, api_key=key, max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        options = genai_types.HttpOptions(base_url=url, api_version="v1beta")
        gemini = genai.Client(api_key=key, http_options=options)  # kept: closing it closes its HTTP client
        assert gemini.models.generate_content(model="gemini-2.0-flash", contents="hi").text
        query_key = httpx.post(  # Gemini's other way: the key in the query string
            f"{url}/v1beta/models/gemini-2.0-flash:generateContent?key={key}",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
        )
        assert query_key.status_code == 200, query_key.text
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key=revoked, max_retries=0).models.list()
        assert httpx.get(url + "/admin/orgs", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).is_success
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    printed = out + err
    for secret in (key, revoked, PROVIDER_KEY, ADMIN_KEY):
        assert secret not in printed
        assert secret.split("-", 2)[-1] not in printed  # nor the secret part alone
        assert hashlib.sha256(secret.encode()).hexdigest() not in printed
    assert out == ""  # everything is a log line, on standard error
    lines = [json.loads(line) for line in err.splitlines()]  # and every line is JSON
    assert {line["level"] for line in lines} >= {"debug", "info", "warning"}
    [banner] = [line for line in lines if line["message"].startswith("kakin gateway on")]
    assert f"127.0.0.1:{port}" in banner["message"] and "sim (simulator)" in banner["message"]
    access = [line for line in lines if line["logger"] == "kakin.access" and line["path"] != "/healthz"]
    assert [(a["method"], a["status"]) for a in access] == [
        ("POST", 200),
        ("POST", 200),
        ("POST", 200),
        ("POST", 200),
        ("GET", 401),
        ("GET", 200),
    ]
    assert access[0]["path"] == "/v1/chat/completions" and access[0]["duration_ms"] > 0
    assert access[3]["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"  # no query string
    assert {a["org_id"] for a in access[:4]} == {org.id} and {a["project_id"] for a in access[:4]} == {
        project.id
    }
    assert all(a["request_id"].startswith("req_") for a in access[:4])
    assert access[5]["path"] == "/admin/orgs" and access[5]["org_id"] is None
    [warning] = [line for line in lines if line["level"] == "warning"]
    assert warning["provider"] == "azure-east" and warning["api_key_env"] == "KAKIN_TEST_UNSET_AZURE_KEY"
    assert "not set" in warning["message"] and "without a provider key" in warning["message"]


@pytest.mark.parametrize(
    ("provider", "warns"),
    [
        (
            ProviderSettings(
                name="o", kind="openai", base_url="https://api.openai.com", api_key_env="UNSET_X"
            ),
            True,
        ),
        (
            ProviderSettings(
                name="o", kind="openai", base_url="https://api.openai.com", api_key_env="EMPTY_X"
            ),
            True,
        ),
        (ProviderSettings(name="o", kind="openai", base_url="https://api.openai.com"), True),
        (
            ProviderSettings(name="o", kind="openai", base_url="https://api.openai.com", api_key_env="SET_X"),
            False,
        ),
        (
            ProviderSettings(
                name="s", kind="simulator", base_url="http://127.0.0.1:9", api_key_env="UNSET_X"
            ),
            False,
        ),
        (ProviderSettings(name="b", kind="openai", base_url="builtin", api_key_env="UNSET_X"), False),
    ],
)
def test_a_provider_without_its_key_is_named_at_start(
    provider: ProviderSettings, warns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_X", raising=False)
    monkeypatch.setenv("EMPTY_X", "")
    monkeypatch.setenv("SET_X", "sk-set")
    problem = provider.missing_key()
    assert bool(problem) is warns
    if warns:
        assert (
            f"provider {provider.name!r}" in problem and (provider.api_key_env or "no api_key_env") in problem
        )


def test_log_settings_from_the_environment() -> None:
    settings = load_settings(env={"KAKIN_LOG_LEVEL": "DEBUG", "KAKIN_LOGGING__FORMAT": "json"})
    assert (settings.logging.level, settings.logging.format) == ("debug", "json")
    assert load_settings(env={}).logging == LoggingSettings(level="info", format="text")
    with pytest.raises(InvalidInput, match=r"logging\.level"):
        load_settings(env={"KAKIN_LOG_LEVEL": "chatty"})
