"""Metering a streamed response while forwarding it.

``StreamMeter.feed`` takes upstream bytes as they arrive (events may be split anywhere,
even inside a UTF-8 character) and returns the bytes to send to the client. Only one case
changes the stream: an OpenAI chat stream whose client did not ask for usage loses the
usage chunk kakin asked for; that stream is forwarded event by event (a partial event
waits for its end). Every other stream is forwarded chunk for chunk, untouched, and read
on the side.

``usage()`` is the provider's final usage, or None when the stream ended before reporting
it (cut, abandoned or faulty); ``partial_usage()`` then gives what was produced so far,
counted by kakin, so an abandoned stream is still billed for what it delivered.
"""

from __future__ import annotations

import orjson

from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import StreamState
from kakin.providers.dispatch import adapter_for
from kakin.providers.request import ParsedRequest


class StreamMeter:
    """Reads one upstream stream; see the module docstring."""

    __slots__ = ("_array", "_buffer", "_on_event", "_scanner", "_strip", "state")

    def __init__(self, parsed: ParsedRequest) -> None:
        adapter = adapter_for(parsed.endpoint)
        self.state = StreamState(parsed)
        self._on_event = adapter.on_event
        # Only OpenAI chat can need an event removed (the usage chunk nobody asked for).
        self._strip = parsed.endpoint.kind == "chat" and not parsed.client_wants_stream_usage
        self._array = parsed.endpoint.api == "google" and parsed.query.get("alt") != "sse"
        self._buffer = bytearray()
        if self._array:
            self._scanner = _ArrayScanner()

    # ------------------------------------------------------------------ feeding

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward to the client for this upstream chunk (possibly fewer, never more)."""
        if not chunk:
            return b""
        if self._array:
            for element in self._scanner.feed(chunk):
                self._event(element)
            return chunk
        self._buffer += chunk
        if b"\r" in self._buffer:  # CRLF framing (Gemini), possibly split between chunks
            self._normalise()
        end = self._buffer.rfind(b"\n\n")
        if end < 0:
            return b"" if self._strip else chunk
        complete = bytes(self._buffer[: end + 2])
        del self._buffer[: end + 2]
        if not self._strip:
            for raw in complete.split(b"\n\n")[:-1]:
                self._sse_event(raw)
            return chunk
        kept: list[bytes] = []
        dropped = False
        for raw in complete.split(b"\n\n")[:-1]:
            if self._sse_event(raw):
                kept.append(raw)
            else:
                dropped = True
        if not dropped:
            return complete
        return b"".join(event + b"\n\n" for event in kept)

    def finish(self) -> bytes:
        """Call when upstream closed: flushes a final event that lacked its blank line."""
        if self._array:
            return b""
        rest = bytes(self._buffer).strip(b"\n")
        self._buffer.clear()
        if not rest:
            return b""
        keep = self._sse_event(rest)
        return rest + b"\n\n" if (self._strip and keep) else b""

    def _normalise(self) -> None:
        data = bytes(self._buffer)
        # A lone trailing \r may be the first half of \r\n: keep it for the next chunk.
        tail = b"\r" if data.endswith(b"\r") else b""
        body = data[:-1] if tail else data
        self._buffer = bytearray(body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail)

    def _sse_event(self, raw: bytes) -> bool:
        """Meter one SSE event; False when it must not reach the client."""
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        if not data:
            return True
        payload = b"\n".join(data)
        if payload == b"[DONE]":
            return True
        return self._event(payload)

    def _event(self, payload: bytes) -> bool:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        if self._on_event is None:
            return True
        return self._on_event(self.state, event)

    # ------------------------------------------------------------------ results

    def usage(self) -> Usage | None:
        """The provider's final usage; None if the stream ended without reporting it."""
        return self.state.usage if self.state.finished else None

    def output_text(self) -> str:
        """The text (and thinking) produced so far, as the client received it."""
        return "".join(self.state.text_parts)

    def output_tokens(self) -> int:
        """kakin's count of the output produced so far."""
        text = self.output_text()
        return counting.count_text(text, self.state.parsed.model).tokens if text else 0

    def partial_usage(self) -> Usage:
        """Usage of what was delivered, for a stream that ended without final usage:
        input as the provider reported it early (else kakin's count), output counted."""
        parsed = self.state.parsed
        reported = self.state.reported_input_tokens
        return Usage(
            input_tokens=reported if reported is not None else parsed.input_tokens,
            output_tokens=self.output_tokens(),
        )


class _ArrayScanner:
    """Splits a streamed JSON array (``[{…},{…}]``) into its elements' bytes."""

    __slots__ = ("_current", "_depth", "_escape", "_in_string")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._current = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        elements: list[bytes] = []
        depth, in_string, escape = self._depth, self._in_string, self._escape
        current = self._current
        start = 0 if depth >= 2 else -1
        for index, byte in enumerate(chunk):
            if in_string:
                if escape:
                    escape = False
                elif byte == 0x5C:  # backslash
                    escape = True
                elif byte == 0x22:
                    in_string = False
                continue
            if byte == 0x22:
                in_string = True
            elif byte in (0x7B, 0x5B):  # { [
                depth += 1
                if depth == 2:
                    start = index
            elif byte in (0x7D, 0x5D):  # } ]
                depth -= 1
                if depth == 1 and start >= 0:
                    current += chunk[start : index + 1]
                    elements.append(bytes(current))
                    current.clear()
                    start = -1
        if depth >= 2 and start >= 0:
            current += chunk[start:]
        self._depth, self._in_string, self._escape = depth, in_string, escape
        return elements
