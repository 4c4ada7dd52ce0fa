"""count_messages: OpenAI's documented framing, images, tools, and the other providers' shapes."""

from __future__ import annotations

import base64
import struct

import pytest

from kakin.errors import InvalidInput
from kakin.tokens import count_messages, count_text, encoding, image_token_bound, image_tokens

# The OpenAI cookbook's "How to count tokens with tiktoken" examples, with the prompt_tokens
# the API reported for them.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]
COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header + b"\x00\x00\x00\x00"


def data_url(width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height)).decode()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo-0613", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-3.5-turbo-0301", 127),
    ],
)
def test_cookbook_chat_example(model: str, expected: int) -> None:
    result = count_messages(COOKBOOK_MESSAGES, model)
    assert (result.tokens, result.upper_bound, result.exact) == (expected, expected, True)
    assert "3/message" in result.method or "4/message" in result.method


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_cookbook_tools_example(model: str, expected: int) -> None:
    result = count_messages(COOKBOOK_TOOL_MESSAGES, model, tools=COOKBOOK_TOOLS)
    assert result.tokens == expected
    assert result.exact is False and "tools approximated" in result.method
    assert result.upper_bound >= result.tokens


def test_framing_rule_for_one_message() -> None:
    text = "課金の上限はいくらですか?"
    expected = 3 + len(encoding("o200k_base").encode_ordinary("user")) + count_text(text, "gpt-4o").tokens + 3
    assert count_messages([{"role": "user", "content": text}], "gpt-4o").tokens == expected
    named = count_messages([{"role": "user", "name": "taro", "content": text}], "gpt-4o").tokens
    assert named == expected + 1 + len(encoding("o200k_base").encode_ordinary("taro"))
    assert count_messages([], "gpt-4o").tokens == 3


def test_text_parts_count_like_the_same_text() -> None:
    plain = count_messages([{"role": "user", "content": "Hello there, general."}], "gpt-4o")
    parts = count_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hello there, "}, {"type": "text", "text": "general."}],
            }
        ],
        "gpt-4o",
    )
    assert parts.tokens >= plain.tokens - 1
    assert parts.exact is False and parts.upper_bound >= parts.tokens


def test_inline_image_is_counted_by_its_real_size() -> None:
    base = count_messages(
        [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}], "gpt-4o"
    )
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": data_url(1024, 1024), "detail": "high"}},
        ],
    }
    result = count_messages([message], "gpt-4o")
    assert result.tokens == base.tokens + 765
    assert result.upper_bound == result.tokens
    low = count_messages(
        [
            {
                **message,
                "content": [
                    message["content"][0],
                    {"type": "image_url", "image_url": {"url": data_url(1024, 1024), "detail": "low"}},
                ],
            }
        ],
        "gpt-4o",
    )
    assert low.tokens == base.tokens + 85


def test_url_image_is_held_at_the_largest_size() -> None:
    message = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}],
    }
    result = count_messages([message], "gpt-4o")
    assert result.exact is False and "largest size" in result.method
    assert result.upper_bound >= 85 + 170 * 8
    assert result.upper_bound >= image_tokens(768, 2048, model="gpt-4o", detail="high")


def test_responses_api_input_image() -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "hi"},
            {"type": "input_image", "image_url": data_url(512, 512), "detail": "high"},
        ],
    }
    assert (
        count_messages([message], "gpt-4.1").tokens
        == count_messages(
            [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}], "gpt-4.1"
        ).tokens
        + 255
    )


def test_anthropic_shape_with_image_tool_use_and_result() -> None:
    messages = [
        {"role": "system", "content": "You are a careful assistant."},
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(png(1000, 1000)).decode(),
                    },
                },
                {"type": "text", "text": "この画像を説明してください。"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "猫"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a cat"}]}
            ],
        },
    ]
    result = count_messages(messages, "claude-sonnet-4-5")
    assert result.exact is False and "anthropic" in result.method
    assert result.tokens >= 1334  # the image alone: 1000 × 1000 / 750
    assert result.upper_bound >= result.tokens
    assert result.upper_bound >= image_token_bound((1000, 1000), model="claude-sonnet-4-5") + len(
        "この画像を説明してください。".encode()
    )


def test_anthropic_tools_add_the_tool_use_system_prompt() -> None:
    messages = [{"role": "user", "content": "What's the weather like in Boston?"}]
    anthropic_tools = [
        {
            "name": "get_weather",
            "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    without = count_messages(messages, "claude-3-5-haiku-latest")
    with_tools = count_messages(messages, "claude-3-5-haiku-latest", tools=anthropic_tools)
    assert with_tools.tokens - without.tokens >= 346
    assert with_tools.upper_bound - without.upper_bound >= 530


def test_gemini_contents_shape() -> None:
    contents = [
        {
            "role": "user",
            "parts": [
                {"text": "写真の中に何がありますか?"},
                {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(png(300, 200)).decode()}},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "search", "args": {"q": "cat"}}}]},
        {
            "role": "user",
            "parts": [{"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/big.jpg"}}],
        },
    ]
    result = count_messages(contents, "gemini-2.0-flash")
    assert result.exact is False and "google" in result.method
    # 258 for the small inline image, and the URI image is held at the largest documented size
    assert result.upper_bound >= 258 + image_token_bound(None, model="gemini-2.0-flash")
    assert result.tokens >= 258


def test_upper_bound_holds_for_openai_messages_with_tool_calls() -> None:
    messages = [
        {"role": "user", "content": "Add 2 and 3"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
    ]
    result = count_messages(messages, "gpt-4o")
    assert result.exact is False
    assert result.tokens > count_messages(messages[:1], "gpt-4o").tokens


@pytest.mark.parametrize(
    ("messages", "tools", "message"),
    [
        ("not a list", None, "messages must be a list"),
        ([42], None, r"messages\[0\] must be an object"),
        ([{"role": "user", "content": 5}], None, r"messages\[0\].content must be a string or a list"),
        ([{"role": "user", "content": [7]}], None, r"messages\[0\].content\[0\] must be an object"),
        ([], "tool", "tools must be a list"),
        ([], ["tool"], r"tools\[0\] must be an object"),
    ],
)
def test_malformed_requests_are_invalid_input(messages: object, tools: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        count_messages(messages, "gpt-4o", tools=tools)  # type: ignore[arg-type]


def test_absurd_nesting_is_refused() -> None:
    part: dict = {"type": "tool_result", "content": "leaf"}
    for _ in range(40):
        part = {"type": "tool_result", "content": [part]}
    with pytest.raises(InvalidInput, match="nested more than"):
        count_messages([{"role": "user", "content": [part]}], "claude-3-haiku")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hello"}],
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "東京の天気は？ 絵文字も 🎌", "name": "taro"},
            {"role": "assistant", "content": None},
        ],
        [{"role": "user", "content": "a" * 5000}],
    ],
)
@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4", "gpt-3.5-turbo-0301"])
def test_quick_upper_bound_is_never_below_the_exact_count(messages: list, model: str) -> None:
    from kakin.tokens import quick_upper_bound

    quick = quick_upper_bound(messages, model)
    assert quick is not None and quick >= count_messages(messages, model).tokens


@pytest.mark.parametrize(
    ("messages", "model", "tools"),
    [
        ([{"role": "user", "content": "hi"}], "claude-haiku-4-5", None),  # no exact tokenizer
        ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "gpt-4o", None),  # parts
        ([{"role": "user", "content": "hi"}], "gpt-4o", [{"type": "function", "function": {"name": "f"}}]),
        (["not an object"], "gpt-4o", None),
    ],
)
def test_quick_upper_bound_declines_what_it_cannot_bound_without_counting(messages, model, tools) -> None:
    from kakin.tokens import quick_upper_bound

    assert quick_upper_bound(messages, model, tools=tools) is None
