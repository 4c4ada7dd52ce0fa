"""Provider wire formats: what the gateway needs to meter each provider API.

kakin speaks the providers' own APIs, so official SDKs work by changing the base URL.
This package knows those formats; it does no I/O. The simulated provider that speaks
them all over real HTTP lives in ``kakin.providers.simulator``.

Adapter API (all pure functions; the gateway calls them in this order)
-----------------------------------------------------------------------

1. Route: ``match_endpoint(method, path) -> EndpointMatch | None``
   ``EndpointMatch.endpoint`` is an ``Endpoint`` (``name`` e.g. "openai.chat", ``api`` in
   {"openai", "azure", "anthropic", "google"}, ``kind``, ``billable``, ``streaming`` in
   {"never", "optional", "always"}, ``body`` in {"json", "multipart", "none"});
   ``EndpointMatch.path_params`` holds ``model`` (Gemini), ``deployment`` (Azure) or
   ``name`` (a Gemini cache, a stored OpenAI response). ``ENDPOINTS`` lists every endpoint covered.

2. Authenticate: ``extract_credential(headers, query) -> Credential | None`` finds the key
   the caller presented (Bearer, x-api-key, api-key, x-goog-api-key or ?key=).
   ``auth_headers(api, provider_key)`` gives the headers for the upstream's own key.

3. Parse: ``parse(endpoint, body, path_params, query, *, model_map=None) -> ParsedRequest``
   validates the body (``InvalidInput`` with a precise message on malformed JSON, wrong
   types, negative or huge numbers, a missing model …) and returns ``model``, ``stream``,
   ``client_wants_stream_usage``, ``max_output_tokens`` (the request's cap × choices, or
   None), ``input_tokens`` / ``input_tokens_bound`` / ``input_tokens_exact`` (kakin.tokens),
   ``images``/``image_size``/``image_quality``, ``audio_seconds``, ``cache_ttl_seconds``,
   ``cached_content``, ``deployment`` and ``cache_key`` (identical requests share it).
   ``model_map`` maps Azure deployment names to catalog models.
   ``parsed.bound_usage(default_max_output_tokens) -> Usage`` is the worst case to reserve;
   without a cap it holds ``parsed.output_limit(default_max_output_tokens)`` per answer.

4. Forward: ``upstream_request(parsed, *, model=None, api_version=None, output_limit=None)
   -> UpstreamRequest`` (``path`` with query string, ``body`` bytes, ``headers`` to add).
   The client's bytes are reused unless something must change: an OpenAI chat stream gets
   ``stream_options.include_usage``; ``model`` swaps in a routed model (in the body, or in
   the path for Gemini and Azure); ``output_limit`` limits each answer of a request that
   sets no cap (``parsed.output_limit(default)``, what the bound holds); ``?key=`` is
   dropped; Azure's ``api-version`` is set.

5. Meter a complete response: ``usage_from_body(parsed, body_bytes_or_json) -> Usage | None``.

6. Meter a stream: ``meter = StreamMeter(parsed)``; for each upstream chunk forward
   ``meter.feed(chunk)`` (the events it completed; removes the usage chunk the client did not
   ask for); at the end forward ``meter.finish()``; then ``meter.usage()`` is the final
   ``Usage`` or None when the stream ended without it, and ``meter.partial_usage()`` /
   ``meter.output_tokens()`` / ``meter.output_text()`` tell what was delivered so far.
   ``meter.stamp(tail, fields)`` adds kakin's fields (the cost) to the final usage event.

7. Refuse: ``error_response(api, status, message, code=None, param=None) -> bytes`` in the
   provider's error JSON; ``error_for(api, kakin_error) -> (status, bytes)``;
   ``stream_error_event(api, status, message)`` for an error inside a started stream.

Usage mapping (provider fields → ``kakin.pricing.Usage``) is tabulated in docs/providers.md.
"""

from kakin.providers.credentials import Credential, auth_headers, extract_credential
from kakin.providers.dispatch import adapter_for, output_unlimited, parse, upstream_request, usage_from_body
from kakin.providers.endpoints import ENDPOINTS, Endpoint, EndpointMatch, endpoint_named, match_endpoint
from kakin.providers.errors import error_body, error_for, error_response, stream_error_event
from kakin.providers.meter import StreamMeter
from kakin.providers.request import ParsedRequest, UpstreamRequest

__all__ = [
    "ENDPOINTS",
    "Credential",
    "Endpoint",
    "EndpointMatch",
    "ParsedRequest",
    "StreamMeter",
    "UpstreamRequest",
    "adapter_for",
    "auth_headers",
    "endpoint_named",
    "error_body",
    "error_for",
    "error_response",
    "extract_credential",
    "match_endpoint",
    "output_unlimited",
    "parse",
    "stream_error_event",
    "upstream_request",
    "usage_from_body",
]
