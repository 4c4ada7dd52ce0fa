"""StreamMeter on real simulator streams: any split of the bytes meters the same."""

from __future__ import annotations

import itertools

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kakin.providers import StreamMeter, match_endpoint, parse, upstream_request

CASES = {
    "chat-stripped": ("/v1/chat/completions", {}, {"model": "gpt-4o-mini", "stream": True,
                      "messages": [{"role": "user", "content": "split me é漢字"}]}),
    "chat-asked": ("/v1/chat/completions", {}, {"model": "gpt-4o-mini", "stream": True,
                   "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "asked"}]}),
    "responses": ("/v1/responses", {}, {"model": "o3", "stream": True, "input": "split responses"}),
    "anthropic": ("/v1/messages", {}, {"model": "claude-haiku-4-5", "max_tokens": 100, "stream": True,
                  "messages": [{"role": "user", "content": "split anthropic"}]}),
    "gemini-sse": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", {"alt": "sse"},
                   {"contents": [{"parts": [{"text": "split gemini"}]}]}),
    "gemini-array": ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", {},
                     {"contents": [{"parts": [{"text": "split \"quoted\" {braces} [array] \\ end"}]}]}),
}  # fmt: skip


def parsed_case(name: str):
    path, query, doc = CASES[name]
    match = match_endpoint("POST", path)
    return parse(match.endpoint, orjson.dumps(doc), match.path_params, query)


@pytest.fixture(scope="module")
def upstream_streams(simulator) -> dict[str, bytes]:
    """The raw upstream bytes of each case, as the gateway would request them."""
    streams = {}
    for name in CASES:
        target = upstream_request(parsed_case(name))
        response = httpx.post(
            simulator.url + target.path, content=target.body, headers={"x-kakin-simulate": "chunks=12"}
        )
        assert response.status_code == 200
        streams[name] = response.content
    return streams


def run(name: str, pieces: list[bytes]):
    meter = StreamMeter(parsed_case(name))
    out = b"".join(meter.feed(p) for p in pieces)
    # Complete streams are fully metered before the connection closes.
    usage_before_close = meter.usage()
    out += meter.finish()
    assert meter.usage() == usage_before_close
    return out, meter


def test_whole_stream_metering(upstream_streams: dict[str, bytes]) -> None:
    for name, raw in upstream_streams.items():
        out, meter = run(name, [raw])
        usage = meter.usage()
        assert usage is not None and usage.output_tokens > 0 and usage.input_tokens > 0, name
        assert meter.output_text(), name
        if name == "chat-stripped":
            assert b'"usage":{' in raw and b'"usage":{' not in out
        else:  # forwarded as sent, SSE line ends as \n (Gemini sends \r\n)
            assert out == (raw if name == "gemini-array" else raw.replace(b"\r\n", b"\n")), name


@pytest.mark.parametrize("name", list(CASES))
def test_every_single_split_point(upstream_streams: dict[str, bytes], name: str) -> None:
    raw = upstream_streams[name]
    reference, whole = run(name, [raw])
    for cut in range(1, len(raw)):
        out, meter = run(name, [raw[:cut], raw[cut:]])
        assert out == reference, cut
        assert meter.usage() == whole.usage(), cut


def test_byte_by_byte(upstream_streams: dict[str, bytes]) -> None:
    for name, raw in upstream_streams.items():
        reference, whole = run(name, [raw])
        out, meter = run(name, [raw[i : i + 1] for i in range(len(raw))])
        assert (
            out == reference and meter.usage() == whole.usage() and meter.output_text() == whole.output_text()
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(list(CASES)), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40)
)
def test_random_splits(upstream_streams: dict[str, bytes], name: str, cuts: list[int]) -> None:
    raw = upstream_streams[name]
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)]
    reference, whole = run(name, [raw])
    out, meter = run(name, pieces)
    assert out == reference and meter.usage() == whole.usage()


def test_crlf_framing_is_understood() -> None:
    raw = (
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\r\n\r\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    out, meter = run("chat-stripped", [raw[:40], raw[40:]])
    assert meter.usage().input_tokens == 5 and b"usage" not in out and out.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("name", list(CASES))
def test_truncated_stream_reports_no_usage_but_what_was_delivered(simulator, name: str) -> None:
    target = upstream_request(parsed_case(name))
    response = httpx.post(
        simulator.url + target.path,
        content=target.body,
        headers={"x-kakin-simulate": "truncate=8; chunks=12"},
    )
    _out, meter = run(name, [response.content])
    assert meter.usage() is None
    partial = meter.partial_usage()
    assert partial.input_tokens > 0
    assert partial.output_tokens == meter.output_tokens() > 0


@pytest.mark.parametrize("name", list(CASES))
def test_stamp_finds_the_final_event_however_the_stream_is_split(
    upstream_streams: dict[str, bytes], name: str
) -> None:
    """The gateway holds output from the event that makes the usage final; stamping that tail
    adds kakin's fields to that event, whole, wherever the upstream bytes were split."""
    raw = upstream_streams[name]
    fields = {"request_id": "req_1", "cost_usd": "0.000123"}
    for cut in range(1, len(raw), 5):
        meter = StreamMeter(parsed_case(name))
        sent = tail = b""
        for piece in (raw[:cut], raw[cut:]):
            out = meter.feed(piece)
            if tail or meter.state.finished:
                tail += out
            else:
                sent += out
        tail += meter.finish()
        body = sent + meter.stamp(tail, fields)
        if name == "chat-stripped":  # no usage chunk for the client: a comment before [DONE]
            assert body.endswith(b": kakin " + orjson.dumps(fields) + b"\n\ndata: [DONE]\n\n"), cut
            continue
        if name == "gemini-array":
            docs = orjson.loads(body)
        else:
            docs = [
                orjson.loads(line[6:])
                for event in body.split(b"\n\n")
                for line in event.split(b"\n")
                if line.startswith(b"data: {")
            ]
        stamped = [doc.get("response", doc) if name == "responses" else doc for doc in docs]
        assert [doc.get("kakin") for doc in stamped].count(fields) == 1, cut
        assert sum("kakin" in doc for doc in stamped) == 1, cut


def test_a_partial_event_waits_for_its_end() -> None:
    meter = StreamMeter(parsed_case("chat-asked"))
    assert meter.feed(b'data: {"choices":[{"index":0,"delta":{"content":"h') == b""
    assert (
        meter.feed(b'i"}}]}\n\ndata: {"cho')
        == b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    )
    assert meter.output_text() == "hi"
