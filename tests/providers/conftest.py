"""A simulated provider on a free 127.0.0.1 port, shared by the provider tests."""

from __future__ import annotations

import io
import math
import struct
import uuid
import wave
from collections.abc import Iterator

import pytest

from kakin.providers.simulator import RunningSimulator, SimulatorConfig, start_in_thread


@pytest.fixture(scope="session")
def simulator() -> Iterator[RunningSimulator]:
    with start_in_thread(SimulatorConfig()) as running:
        yield running


@pytest.fixture()
def unique() -> str:
    """A fresh word, so prompts that exercise caches never collide between tests."""
    return uuid.uuid4().hex


@pytest.fixture()
def make_wav() -> object:
    """``make_wav(seconds)``: WAV bytes of exactly that duration."""
    return wav_bytes


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone lasting exactly ``seconds``."""
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(frames)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()
