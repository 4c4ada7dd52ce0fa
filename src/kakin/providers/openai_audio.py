"""OpenAI (and Azure) ``POST /v1/audio/transcriptions`` (multipart upload).

Whisper is priced per second of audio. The duration is read exactly from a WAV header;
for compressed formats kakin bounds it before the request by assuming the lowest bitrate
speech is sent at (8 kbit/s), and takes the provider's reported duration after it
(``usage.seconds``, or ``duration`` in ``verbose_json``). Token-priced transcription
models (gpt-4o-transcribe …) report ``usage.type = "tokens"`` and are recorded as tokens.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers.adapter import Adapter, as_int, sub
from kakin.providers.endpoints import Endpoint
from kakin.providers.multipart import parse_form
from kakin.providers.request import ParsedRequest

# Lowest bitrate a speech file plausibly uses, in bytes per second: the bound for non-WAV.
MIN_BYTES_PER_SECOND = 1000
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")


def wav_seconds(data: bytes) -> Decimal | None:
    """Exact duration of a PCM WAV file from its header, or None when it is not one."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    position = 12
    byte_rate = 0
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        if chunk == b"fmt " and position + 16 <= len(data):
            byte_rate = struct.unpack("<I", data[position + 16 : position + 20])[0]
        elif chunk == b"data":
            if byte_rate <= 0:
                return None
            size = min(size, len(data) - position - 8)
            return Decimal(size) / Decimal(byte_rate)
        position += 8 + size + (size & 1)
    return None


def audio_seconds(data: bytes) -> tuple[Decimal, bool]:
    """(seconds, exact): exact for WAV, else an upper bound from the file size."""
    exact = wav_seconds(data)
    if exact is not None:
        return exact, True
    return Decimal(len(data)) / MIN_BYTES_PER_SECOND, False


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    form = parse_form(body)
    upload = form.get("file")
    if upload is None or not upload.data:
        raise InvalidInput("file is required: attach the audio file as the multipart field 'file'")
    fields = {name: part.text() for name, part in form.items() if name != "file"}
    if endpoint.api == "azure":
        deployment = path_params["deployment"]
        model = model_map.get(deployment, deployment)
    else:
        deployment = None
        model = fields.get("model", "").strip()
        if not model:
            raise InvalidInput("model is required (for example model='whisper-1')")
    response_format = fields.get("response_format", "json")
    if response_format not in RESPONSE_FORMATS:
        raise InvalidInput(f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    if fields.get("stream", "false").lower() == "true":
        raise InvalidInput("streamed transcription is not supported through kakin; omit stream")
    seconds, exact = audio_seconds(upload.data)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        audio_seconds=seconds,
        audio_seconds_exact=exact,
        deployment=deployment,
        doc=fields,
        path_params=path_params,
        query=query,
        body=body,
    )


def rewrite(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    # Multipart bodies are forwarded as sent; routing does not apply to transcription.
    return None


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    if isinstance(doc, dict):
        block = sub(doc, "usage")
        if block.get("type") == "tokens":
            details = sub(block, "input_token_details")
            return Usage(
                input_tokens=as_int(block.get("input_tokens")),
                input_audio_tokens=as_int(details.get("audio_tokens")),
                output_tokens=as_int(block.get("output_tokens")),
            )
        seconds = block.get("seconds") if block.get("type") == "duration" else doc.get("duration")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            return Usage(audio_seconds=Decimal(str(seconds)))
    # Plain-text formats carry no usage: an exact WAV duration is still known.
    if parsed.audio_seconds is not None and parsed.audio_seconds_exact:
        return Usage(audio_seconds=parsed.audio_seconds)
    return None


ADAPTER = Adapter(parse=parse, rewrite=rewrite, usage=usage)
