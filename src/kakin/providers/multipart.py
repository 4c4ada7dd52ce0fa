"""A small ``multipart/form-data`` reader for audio uploads.

Only what ``/v1/audio/transcriptions`` needs: named fields and one file, all in memory
(the gateway already caps body size). The boundary is read from the body's first line,
so callers need not pass the Content-Type header along.
"""

from __future__ import annotations

from dataclasses import dataclass

from kakin.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def parse_form(body: bytes) -> dict[str, Part]:
    """Fields by name (the last one wins for repeated names)."""
    if not body.startswith(b"--"):
        raise InvalidInput("request body must be multipart/form-data (a file field and a model field)")
    line_end = body.find(b"\r\n")
    if line_end < 3:
        raise InvalidInput("multipart body has no boundary line")
    delimiter = b"\r\n" + body[:line_end]
    parts: dict[str, Part] = {}
    position = line_end + 2
    while True:
        end = body.find(delimiter, position)
        if end < 0:
            raise InvalidInput("multipart body is truncated: the closing boundary is missing")
        part = _part(body[position:end])
        if part is not None:
            parts[part.name] = part
        position = end + len(delimiter)
        if body[position : position + 2] == b"--":
            return parts
        position += 2  # CRLF after the boundary


def _part(raw: bytes) -> Part | None:
    head, sep, data = raw.partition(b"\r\n\r\n")
    if not sep:
        raise InvalidInput("multipart part has no header/body separator")
    name = filename = content_type = None
    for line in head.decode("utf-8", errors="replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            for item in value.split(";"):
                field_name, eq, field_value = item.strip().partition("=")
                if not eq:
                    continue
                field_value = field_value.strip().strip('"')
                if field_name == "name":
                    name = field_value
                elif field_name == "filename":
                    filename = field_value
        elif key == "content-type":
            content_type = value.strip()
    if name is None:
        return None
    return Part(name, data, filename, content_type)
