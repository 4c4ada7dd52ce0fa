"""Image input tokens, by each provider's published rule.

OpenAI (vision guide, "Calculating costs"):
  * tile models — ``detail="low"``: the model's base tokens; ``high`` (and ``auto``, counted as
    high so holds are never short): fit into 2048×2048, shrink so the shortest side is at most
    768 px, then base + tile tokens × number of 512 px tiles. Base/tile: 85/170 for gpt-4o,
    gpt-4.1, gpt-4.5 (and unknown OpenAI models); 2833/5667 for gpt-4o-mini; 75/150 for
    o1/o3; 70/140 for gpt-5; 65/129 for computer-use-preview and gpt-image-1.
  * patch models (gpt-4.1-mini/nano, o4-mini, codex-mini, gpt-5-mini/nano) — 32 px patches,
    shrunk to at most 1536 patches, times a per-model multiplier (1.62, 2.46, 1.72, 1.62,
    2.46). ``detail`` does not change the count for these models.
Anthropic (vision docs): shrink to a long edge of at most 1568 px and at most ~1600 tokens
  (1.2 MP), then tokens ≈ width × height / 750.
Google Gemini (token docs): Gemini 2.x — an image with both sides ≤ 384 px is 258 tokens,
  larger images are cut into 768×768 tiles of 258 tokens each; Gemini 3 — a fixed budget per
  image set by media_resolution: low 280, medium 560, high 1120 (the default).

Dimensions of inline images (data: URLs, base64 blocks) are read from the PNG, GIF, JPEG or
WebP header; nothing is decoded and nothing is fetched.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from fractions import Fraction
from typing import Final

from kakin.errors import InvalidInput
from kakin.tokens.models import base_name, provider_for_model

# (prefix, multiplier) for OpenAI's patch-billed models, most specific first.
_PATCH_MULTIPLIERS: Final = (
    ("gpt-4.1-mini", Fraction("1.62")),
    ("gpt-4.1-nano", Fraction("2.46")),
    ("gpt-5-mini", Fraction("1.62")),
    ("gpt-5-nano", Fraction("2.46")),
    ("o4-mini", Fraction("1.72")),
    ("codex-mini", Fraction("1.72")),
)
# (prefix, base tokens, tokens per 512 px tile) for OpenAI's tile-billed models.
_TILE_RATES: Final = (
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-5", 70, 140),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("computer-use", 65, 129),
    ("gpt-image", 65, 129),
)
_DEFAULT_TILE_RATE: Final = (85, 170)
_PATCH_LIMIT: Final = 1536
_GEMINI3_BUDGET: Final = {"low": 280, "medium": 560, "high": 1120, "auto": 1120}
_ANTHROPIC_LONG_EDGE: Final = 1568
_ANTHROPIC_MAX_PIXELS: Final = 1600 * 750
_DETAILS: Final = frozenset({"auto", "low", "high", "medium"})
_MAX_SIDE: Final = 1_000_000


def image_tokens(width: int, height: int, *, model: str, detail: str = "auto") -> int:
    """Input tokens of one ``width`` × ``height`` image sent to ``model``."""
    _check_size(width, height)
    if detail not in _DETAILS:
        raise InvalidInput(
            f"image detail must be auto, low or high (OpenAI), or low, medium or high (Gemini 3 media resolution); got {detail!r}"
        )
    provider = provider_for_model(model)
    if provider == "anthropic":
        return anthropic_image_tokens(width, height)
    if provider == "google":
        return gemini_image_tokens(width, height, model=model, resolution=detail)
    return openai_image_tokens(width, height, model=model, detail=detail)


def openai_image_tokens(width: int, height: int, *, model: str, detail: str = "auto") -> int:
    name = base_name(model)
    for prefix, multiplier in _PATCH_MULTIPLIERS:
        if name.startswith(prefix):
            return math.ceil(_patches(width, height) * multiplier)
    base, per_tile = next(((b, t) for p, b, t in _TILE_RATES if name.startswith(p)), _DEFAULT_TILE_RATE)
    if detail == "low":
        return base
    return base + per_tile * _tiles_512(width, height)


def _tiles_512(width: int, height: int) -> int:
    """512 px tiles after fitting into 2048×2048 and shrinking the short side to 768."""
    w, h = Fraction(width), Fraction(height)
    if max(w, h) > 2048:
        scale = Fraction(2048) / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = Fraction(768) / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(width: int, height: int) -> int:
    """32 px patches, shrinking the image as OpenAI documents when it needs more than 1536."""
    raw = math.ceil(width / 32) * math.ceil(height / 32)
    if raw <= _PATCH_LIMIT:
        return raw
    shrink = math.sqrt(_PATCH_LIMIT * 32 * 32 / (width * height))
    across, down = width * shrink / 32, height * shrink / 32
    shrink *= min(math.floor(across) / across, math.floor(down) / down)
    # A tiny epsilon so a side that lands exactly on a patch boundary is not lost to rounding.
    patches = math.floor(width * shrink / 32 + 1e-9) * math.floor(height * shrink / 32 + 1e-9)
    return min(patches, _PATCH_LIMIT)


def anthropic_image_tokens(width: int, height: int) -> int:
    scale = min(Fraction(1), Fraction(_ANTHROPIC_LONG_EDGE, max(width, height)))
    # Shrinking to the pixel limit keeps the aspect ratio, so the area simply becomes the limit.
    area = min(width * height * scale * scale, Fraction(_ANTHROPIC_MAX_PIXELS))
    return math.ceil(area / 750)


def gemini_image_tokens(width: int, height: int, *, model: str, resolution: str = "auto") -> int:
    name = base_name(model)
    if name.startswith("gemini-3"):
        return _GEMINI3_BUDGET.get(resolution, _GEMINI3_BUDGET["high"])
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def _check_size(width: object, height: object) -> None:
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_SIDE:
            raise InvalidInput(
                f"image {label} must be a whole number of pixels between 1 and {_MAX_SIDE}, got {value!r}"
            )


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, GIF, JPEG or WebP file, or None when the
    format is not recognised or the header claims an impossible size."""
    size = _header_size(data)
    if size is None or not (0 < size[0] <= _MAX_SIDE and 0 < size[1] <= _MAX_SIDE):
        return None
    return size


def _header_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        # Start-of-frame markers (all SOFn except DHT, JPG and DAC) carry height then width.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def data_url_size(url: str) -> tuple[int, int] | None:
    """Dimensions of a ``data:image/...;base64,`` URL's image, or None when unknown."""
    if not url.startswith("data:") or ";base64," not in url[:100]:
        return None
    return base64_size(url.split(",", 1)[1])


def base64_size(encoded: str) -> tuple[int, int] | None:
    """Dimensions from base64 image data; only the first few KB are decoded."""
    head = "".join(encoded[:65536].split())
    head = head[: len(head) - len(head) % 4]
    try:
        return image_size(base64.b64decode(head, validate=False))
    except (binascii.Error, ValueError, struct.error):
        return None


# Largest image each rule can produce, for images whose size is not in the request (URLs).
_OPENAI_MAX_TILES: Final = 8  # 768 × 2048 after the documented resizing
_GEMINI2_MAX_TILES: Final = 16  # images are downscaled to at most 3072 × 3072 = 4 × 4 tiles


def image_token_bound(size: tuple[int, int] | None, *, model: str, detail: str = "auto") -> int:
    """Tokens one image can cost at most. With a known ``size`` this is the documented count
    (plus 10 % for Anthropic, whose formula is stated as approximate); without one, the largest
    count the provider's resizing rule allows."""
    provider = provider_for_model(model)
    if size is not None:
        tokens = image_tokens(size[0], size[1], model=model, detail=detail)
        return math.ceil(tokens * Fraction(11, 10)) if provider == "anthropic" else tokens
    if provider == "anthropic":
        return math.ceil(Fraction(_ANTHROPIC_MAX_PIXELS, 750) * Fraction(11, 10))
    if provider == "google":
        if base_name(model).startswith("gemini-3"):
            return _GEMINI3_BUDGET.get(detail, _GEMINI3_BUDGET["high"])
        return 258 * _GEMINI2_MAX_TILES
    name = base_name(model)
    for prefix, multiplier in _PATCH_MULTIPLIERS:
        if name.startswith(prefix):
            return math.ceil(_PATCH_LIMIT * multiplier)
    base, per_tile = next(((b, t) for p, b, t in _TILE_RATES if name.startswith(p)), _DEFAULT_TILE_RATE)
    return base if detail == "low" else base + per_tile * _OPENAI_MAX_TILES
