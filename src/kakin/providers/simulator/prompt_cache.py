"""Prompt caching as the three providers do it, simplified but with their rules.

- OpenAI: automatic. A prompt of ≥ 1024 tokens whose leading messages were sent before
  reads those from cache; ``cached_tokens`` grows in 128-token steps from 1024.
  Prefixes are remembered at message boundaries.
- Anthropic: explicit. Each ``cache_control`` breakpoint (in tools, system or message
  blocks) closes a prefix; the longest prefix seen before (and not expired: 5 minutes, or
  1 hour with ``ttl: "1h"``, refreshed on every read) is read, and the part up to the last
  breakpoint beyond it is written. Prefixes under the model's minimum are not cached.
- Gemini: explicit ``cachedContents`` entries with a TTL (see ``GeminiCaches``).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from kakin.providers import counting
from kakin.providers.simulator.text import digest


class _Bounded(OrderedDict[bytes, Any]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: bytes, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


def _prefix_keys(head: bytes, turns: list[Any]) -> list[bytes]:
    keys: list[bytes] = []
    running = head
    for turn in turns:
        running = digest(running, orjson.dumps(turn, option=orjson.OPT_SORT_KEYS))
        keys.append(running)
    return keys


class OpenAICache:
    def __init__(self, min_tokens: int, step: int, limit: int) -> None:
        self.min_tokens, self.step = min_tokens, step
        self._seen = _Bounded(limit)

    def cached_tokens(self, model: str, turns: list[Any], tools: Any, total: int) -> int:
        if total < self.min_tokens or not turns:
            return 0
        head = digest(model.encode(), orjson.dumps(tools, option=orjson.OPT_SORT_KEYS))
        keys = _prefix_keys(head, turns)
        best = 0
        for key in reversed(keys):
            if key in self._seen:
                best = self._seen[key]
                break
        for index, key in enumerate(keys):
            if key not in self._seen:
                prefix = (
                    total
                    if index == len(keys) - 1
                    else counting.count_messages(turns[: index + 1], model, tools).tokens
                )
                self._seen.put(key, prefix)
        if best < self.min_tokens:
            return 0
        return min(total, self.min_tokens + (best - self.min_tokens) // self.step * self.step)


@dataclass(frozen=True, slots=True)
class AnthropicCacheResult:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0


class AnthropicCache:
    def __init__(self, min_tokens: int, limit: int) -> None:
        self.min_tokens = min_tokens
        self._entries = _Bounded(limit)  # prefix key → (tokens, ttl seconds, expires at)

    def apply(self, model: str, doc: dict[str, Any], total: int) -> AnthropicCacheResult:
        breakpoints = _breakpoints(doc)
        if not breakpoints:
            return AnthropicCacheResult()
        now = time.monotonic()
        measured: list[tuple[bytes, int, int]] = []  # (key, tokens, ttl)
        for turns, tools, ttl in breakpoints:
            key = digest(model.encode(), orjson.dumps([tools, turns], option=orjson.OPT_SORT_KEYS))
            tokens = min(total, counting.count_messages(turns, model, tools).tokens)
            measured.append((key, tokens, ttl))
        read = 0
        for key, _tokens, _ttl in reversed(measured):
            entry = self._entries.get(key)
            if entry is not None and entry[2] > now:
                read = entry[0]
                self._entries.put(key, (entry[0], entry[1], now + entry[1]))
                break
        _, last_tokens, last_ttl = measured[-1]
        write = last_tokens - read if last_tokens >= self.min_tokens and last_tokens > read else 0
        for key, tokens, ttl in measured:
            if tokens >= self.min_tokens and (key not in self._entries or self._entries[key][2] <= now):
                self._entries.put(key, (tokens, ttl, now + ttl))
        if read and read < self.min_tokens:
            read = 0
        if last_ttl >= 3600:
            return AnthropicCacheResult(read=read, write_1h=write)
        return AnthropicCacheResult(read=read, write_5m=write)


def _ttl(block: Any) -> int | None:
    if not isinstance(block, dict) or not isinstance(block.get("cache_control"), dict):
        return None
    return 3600 if block["cache_control"].get("ttl") == "1h" else 300


def _breakpoints(doc: dict[str, Any]) -> list[tuple[list[Any], list[Any] | None, int]]:
    """(turns, tools, ttl) of every prefix closed by a cache_control marker, in order."""
    out: list[tuple[list[Any], list[Any] | None, int]] = []
    tools = doc.get("tools") if isinstance(doc.get("tools"), list) else None
    for index, tool in enumerate(tools or []):
        ttl = _ttl(tool)
        if ttl:
            out.append(([], tools[: index + 1] if tools else None, ttl))
    turns: list[Any] = []
    system = doc.get("system")
    if isinstance(system, list):
        for index, block in enumerate(system):
            ttl = _ttl(block)
            if ttl:
                out.append(([{"role": "system", "content": system[: index + 1]}], tools, ttl))
    if system is not None:
        turns.append({"role": "system", "content": system})
    for message in doc.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for index, block in enumerate(content):
                ttl = _ttl(block)
                if ttl:
                    partial = {**message, "content": content[: index + 1]}
                    out.append(([*turns, partial], tools, ttl))
        turns.append(message)
    return out


@dataclass(slots=True)
class GeminiCacheEntry:
    name: str
    model: str
    tokens: int
    display_name: str
    created_us: int
    updated_us: int
    expires_us: int

    def resource(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": "models/" + self.model,
            "displayName": self.display_name,
            "createTime": _rfc3339(self.created_us),
            "updateTime": _rfc3339(self.updated_us),
            "expireTime": _rfc3339(self.expires_us),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }


def _now_us() -> int:
    return time.time_ns() // 1000


def _rfc3339(epoch_us: int) -> str:
    seconds, micros = divmod(epoch_us, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z"


class GeminiCaches:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[str, GeminiCacheEntry] = {}

    def _live(self) -> None:
        now = _now_us()
        for name in [n for n, e in self._entries.items() if e.expires_us <= now]:
            del self._entries[name]

    def create(self, model: str, tokens: int, ttl: int, display_name: str) -> GeminiCacheEntry:
        self._live()
        if len(self._entries) >= self.limit:
            oldest = min(self._entries.values(), key=lambda e: e.created_us)
            del self._entries[oldest.name]
        now = _now_us()
        name = "cachedContents/" + secrets.token_hex(8)
        entry = GeminiCacheEntry(name, model, tokens, display_name, now, now, now + ttl * 1_000_000)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> GeminiCacheEntry | None:
        self._live()
        return self._entries.get(name if name.startswith("cachedContents/") else "cachedContents/" + name)

    def update(self, name: str, ttl: int) -> GeminiCacheEntry | None:
        entry = self.get(name)
        if entry is not None:
            entry.updated_us = _now_us()
            entry.expires_us = entry.updated_us + ttl * 1_000_000
        return entry

    def delete(self, name: str) -> bool:
        entry = self.get(name)
        if entry is None:
            return False
        del self._entries[entry.name]
        return True

    def all(self) -> list[GeminiCacheEntry]:
        self._live()
        return list(self._entries.values())
