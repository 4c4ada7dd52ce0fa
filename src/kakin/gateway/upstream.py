"""What travels to the providers: which client headers are forwarded, and the provider's
credentials; the refusals when a provider cannot be reached. The connection itself is
kakin.gateway.client's."""

from __future__ import annotations

from collections.abc import Mapping

from kakin.config import ProviderSettings
from kakin.errors import KakinError
from kakin.providers import auth_headers


class NoUpstream(KakinError):
    status = 502
    code = "bad_gateway"


class UpstreamTimeout(KakinError):
    status = 504
    code = "upstream_timeout"


# Client headers that travel upstream (everything else, above all the caller's kakin key,
# stays at the gateway).
FORWARDED_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "x-goog-api-client",
        "x-kakin-simulate",
    }
)


def upstream_headers(
    client_headers: Mapping[str, str], provider: ProviderSettings, api: str, extra: Mapping[str, str]
) -> dict[str, str]:
    headers = {name: value for name, value in client_headers.items() if name in FORWARDED_HEADERS}
    headers.update(extra)
    key = provider.api_key()
    if key:
        headers.update(auth_headers(api, key))
    return headers
