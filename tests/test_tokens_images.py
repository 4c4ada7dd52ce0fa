"""Image input tokens by the providers' published rules, and image sizes read from headers."""

from __future__ import annotations

import base64
import struct

import pytest

from kakin.errors import InvalidInput
from kakin.tokens import image_size, image_token_bound, image_tokens
from kakin.tokens.images import data_url_size


@pytest.mark.parametrize(
    ("model", "width", "height", "detail", "expected"),
    [
        # OpenAI vision guide examples (tile models)
        ("gpt-4o", 1024, 1024, "high", 765),
        ("gpt-4o", 2048, 4096, "high", 1105),
        ("gpt-4o", 4096, 8192, "low", 85),
        ("gpt-4o", 512, 512, "high", 255),
        ("gpt-4o", 100, 100, "auto", 255),  # auto is held as high
        ("gpt-4.1", 1024, 1024, "high", 765),
        ("gpt-4o-mini", 1024, 1024, "high", 2833 + 4 * 5667),
        ("gpt-4o-mini", 1024, 1024, "low", 2833),
        ("o1", 1024, 1024, "high", 75 + 4 * 150),
        ("o3", 1024, 1024, "low", 75),
        ("gpt-5", 1024, 1024, "high", 70 + 4 * 140),
        ("computer-use-preview", 1024, 1024, "high", 65 + 4 * 129),
        # patch models: 1024×1024 is 1024 patches; 1800×2400 shrinks to 1452 patches
        ("gpt-4.1-mini", 1024, 1024, "high", 1659),
        ("gpt-4.1-mini", 1800, 2400, "auto", 2353),
        ("gpt-4.1-nano", 1024, 1024, "low", 2520),
        ("o4-mini", 1024, 1024, "high", 1762),
        ("gpt-5-mini", 32, 32, "high", 2),
        ("gpt-5-nano", 4000, 4000, "high", 3742),  # shrinks to 39 × 39 = 1521 patches
        # Anthropic: w × h / 750 after fitting 1568 px / ~1.2 MP
        ("claude-sonnet-4-5", 200, 200, "auto", 54),
        ("claude-sonnet-4-5", 1000, 1000, "auto", 1334),
        ("claude-3-haiku", 1092, 1092, "auto", 1590),
        ("claude-opus-4-1", 8000, 8000, "auto", 1600),
        # Gemini 2.x: 258 for ≤ 384 px, else 258 per 768 px tile; Gemini 3: fixed budgets
        ("gemini-2.0-flash", 384, 384, "auto", 258),
        ("gemini-2.0-flash", 385, 100, "auto", 258),
        ("gemini-2.5-pro", 1024, 1024, "auto", 4 * 258),
        ("gemini-2.5-pro", 1536, 768, "auto", 2 * 258),
        ("gemini-3-pro-preview", 4000, 3000, "auto", 1120),
        ("gemini-3-pro-preview", 4000, 3000, "low", 280),
    ],
)
def test_documented_image_token_figures(
    model: str, width: int, height: int, detail: str, expected: int
) -> None:
    assert image_tokens(width, height, model=model, detail=detail) == expected


def test_patch_count_never_exceeds_the_cap() -> None:
    for width, height in [(5000, 5000), (10000, 100), (100, 10000), (2049, 513), (3000, 1999)]:
        assert image_tokens(width, height, model="gpt-4.1-mini") <= 2489  # ceil(1536 × 1.62)


def test_shortest_side_rule_is_not_an_upscale() -> None:
    assert image_tokens(300, 200, model="gpt-4o", detail="high") == 85 + 170


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-5",
        "gpt-4.1-mini",
        "o4-mini",
        "claude-3-7-sonnet",
        "gemini-2.0-flash",
        "gemini-3-flash",
    ],
)
def test_bound_without_size_covers_every_size(model: str) -> None:
    worst = image_token_bound(None, model=model, detail="high")
    for width, height in [
        (1, 1),
        (512, 512),
        (768, 2048),
        (2048, 768),
        (1568, 780),
        (3072, 3072),
        (1092, 1092),
        (4000, 100),
    ]:
        assert image_token_bound((width, height), model=model, detail="high") <= worst


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, -1), (1.5, 10), (True, 10), (10, 10**7)])
def test_bad_sizes_are_invalid_input(width: object, height: object) -> None:
    with pytest.raises(InvalidInput, match="whole number of pixels"):
        image_tokens(width, height, model="gpt-4o")  # type: ignore[arg-type]


def test_bad_detail_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="image detail must be auto, low or high"):
        image_tokens(10, 10, model="gpt-4o", detail="ultra")


def _png(width: int, height: int) -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    )


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = (
        b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"


def _webp_vp8x(width: int, height: int) -> bytes:
    body = (
        b"VP8X"
        + struct.pack("<I", 10)
        + b"\x00\x00\x00\x00"
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


@pytest.mark.parametrize("maker", [_png, _jpeg, _gif, _webp_vp8x, _webp_lossless])
def test_image_size_from_headers(maker) -> None:  # type: ignore[no-untyped-def]
    assert image_size(maker(1234, 567)) == (1234, 567)
    url = "data:image/x;base64," + base64.b64encode(maker(640, 480)).decode()
    assert data_url_size(url) == (640, 480)


def test_unknown_or_broken_data_gives_no_size() -> None:
    assert image_size(b"not an image") is None
    assert image_size(b"\xff\xd8\x00garbage") is None
    assert data_url_size("https://example.com/a.png") is None
    assert data_url_size("data:image/png;base64,!!!!") is None


def test_impossible_header_sizes_are_treated_as_unknown() -> None:
    assert image_size(_png(0, 100)) is None
    assert image_size(_png(3_000_000, 100)) is None
    assert image_size(_png(1, 1)) == (1, 1)
