"""Metering a streamed response while forwarding it.

``StreamMeter.feed`` takes upstream bytes as they arrive (events may be split anywhere,
even inside a UTF-8 character) and returns the bytes to send to the client: the events that
the chunk completed, as the provider sent them (SSE line ends as ``\n``), while a partial
event waits for its end. Only one case removes an event: an OpenAI chat stream whose client
did not ask for usage loses the usage chunk kakin asked for.

``usage()`` is the provider's final usage, or None when the stream ended before reporting
it (cut, abandoned or faulty); ``partial_usage()`` then gives what was produced so far,
counted by kakin, so an abandoned stream is still billed for what it delivered.

``stamp(tail, fields)`` adds kakin's fields (the cost) to the event that carried the final
usage, once the charge is known: only that one event is parsed again.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import StreamState
from kakin.providers.dispatch import adapter_for
from kakin.providers.request import ParsedRequest

STAMP_FIELD = "kakin"
_DONE_EVENT = b"data: [DONE]"


class StreamMeter:
    """Reads one upstream stream; see the module docstring."""

    __slots__ = ("_array", "_buffer", "_endings", "_final", "_on_event", "_scanner", "_stamp_key", "state")

    def __init__(self, parsed: ParsedRequest) -> None:
        adapter = adapter_for(parsed.endpoint)
        self.state = StreamState(parsed)
        self._on_event = adapter.on_event
        self._stamp_key = adapter.stamp_key
        self._endings = adapter.end_markers
        self._array = parsed.endpoint.api == "google" and parsed.query.get("alt") != "sse"
        self._buffer = bytearray()
        # The forwarded event (its bytes as sent) that made the usage final, once seen.
        self._final: bytes | None = None
        if self._array:
            self._scanner = _ArrayScanner()

    # ------------------------------------------------------------------ feeding

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward to the client for this upstream chunk: the events it completed."""
        if not chunk:
            return b""
        if self._array:
            elements, out = self._scanner.feed(chunk)
            for element in elements:
                self._event(element)
                self._note_final(element)
            return out
        if not self._buffer and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            complete = chunk  # the usual chunk: whole events, nothing carried over, no copy
        else:
            self._buffer += chunk
            if b"\r" in self._buffer:  # CRLF framing (Gemini), possibly split between chunks
                self._normalise()
            end = self._buffer.rfind(b"\n\n")
            if end < 0:
                return b""
            complete = bytes(self._buffer[: end + 2])
            del self._buffer[: end + 2]
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

    def may_end(self, piece: bytes) -> bool:
        """Whether ``piece`` (bytes ``feed`` returned) may hold one of the stream's last events:
        from it on, output waits until the charge is durable."""
        return any(marker in piece for marker in self._endings)

    def finish(self) -> bytes:
        """Call when upstream closed the stream normally: the rest it sent (a final event
        that lacked its blank line)."""
        if self._array:
            return self._scanner.rest()
        rest = bytes(self._buffer).strip(b"\n")
        self._buffer.clear()
        if not rest or not self._sse_event(rest):
            return b""
        return rest + b"\n\n"

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
        keep = self._event(payload)
        if keep:
            self._note_final(raw)
        return keep

    def _event(self, payload: bytes) -> bool:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        if self._on_event is None:
            return True
        return self._on_event(self.state, event)

    def _note_final(self, raw: bytes) -> None:
        if self._final is None and self.state.finished:
            self._final = raw

    # ------------------------------------------------------------------ kakin's fields

    def stamp(self, tail: bytes, fields: Mapping[str, str]) -> bytes:
        """``tail`` — the stream's last output, not yet sent — with ``{"kakin": fields}`` added
        to the event that carried the final usage. When the client gets no such event (the
        usage chunk it did not ask for, a stream that ended without usage), the fields go in
        an SSE comment (``: kakin {…}``, before ``data: [DONE]``), which SDKs skip; a JSON-array
        stream without it is returned unchanged."""
        final = self._final
        if final is not None:
            at = tail.rfind(final)
            stamped = self._stamped(final, fields) if at >= 0 else None
            if stamped is not None:
                return tail[:at] + stamped + tail[at + len(final) :]
        if self._array:
            return tail
        comment = b": " + STAMP_FIELD.encode() + b" " + orjson.dumps(fields) + b"\n\n"
        done = tail.rfind(_DONE_EVENT)
        if done < 0:
            return tail + comment
        return tail[:done] + comment + tail[done:]

    def _stamped(self, final: bytes, fields: Mapping[str, str]) -> bytes | None:
        """The final event with the fields added; None if it is not the JSON object expected."""
        if self._array:
            lines, payload = [], final
        else:
            lines = final.split(b"\n")
            data = [line for line in lines if line.startswith(b"data:")]
            payload = b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in data)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        target = doc.get(self._stamp_key) if self._stamp_key and isinstance(doc, dict) else doc
        if not isinstance(target, dict):
            return None
        target[STAMP_FIELD] = dict(fields)
        encoded = orjson.dumps(doc)
        if self._array:
            return encoded
        # The event's other fields (event:, id:) keep their places; one data line replaces its data.
        out: list[bytes] = []
        for line in lines:
            if not line.startswith(b"data:"):
                out.append(line)
            elif encoded:
                out.append(b"data: " + encoded)
                encoded = b""
        return b"\n".join(out)

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
        """Usage of what was produced, for a stream that ended without final usage:
        input as the provider reported it early (else kakin's count), output counted."""
        parsed = self.state.parsed
        reported = self.state.reported_input_tokens
        return Usage(
            input_tokens=reported if reported is not None else parsed.input_tokens,
            output_tokens=self.output_tokens(),
        )


class _ArrayScanner:
    """Splits a streamed JSON array (``[{…},{…}]``) into its elements' bytes, and says which
    bytes can be forwarded: all but those of an element not yet complete."""

    __slots__ = ("_current", "_depth", "_escape", "_in_string")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._current = bytearray()  # the unfinished element's bytes so far

    def feed(self, chunk: bytes) -> tuple[list[bytes], bytes]:
        """(the elements this chunk completed, the bytes to forward now)."""
        elements: list[bytes] = []
        depth, in_string, escape = self._depth, self._in_string, self._escape
        current = self._current
        carried = bytes(current)  # an element begun in an earlier chunk, not yet forwarded
        start = 0 if depth >= 2 else -1
        opened = -1  # where the last element begun in this chunk begins
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
                    start = opened = index
            elif byte in (0x7D, 0x5D):  # } ]
                depth -= 1
                if depth == 1 and start >= 0:
                    current += chunk[start : index + 1]
                    elements.append(bytes(current))
                    current.clear()
                    start = -1
        self._depth, self._in_string, self._escape = depth, in_string, escape
        if depth < 2:
            return elements, carried + chunk if carried else chunk
        if opened < 0:  # the element begun earlier goes on
            current += chunk
            return elements, b""
        current += chunk[opened:]
        return elements, carried + chunk[:opened]

    def rest(self) -> bytes:
        """What was withheld when the stream ended inside an element."""
        rest = bytes(self._current)
        self._current.clear()
        return rest
