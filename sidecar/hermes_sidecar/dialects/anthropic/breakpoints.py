"""Placing prompt-cache breakpoints (``cache_control``) on a Messages request.

Anthropic reads a request as one sequence: ``tools``, then ``system``, then ``messages``. A
breakpoint on a block caches the prefix up to and including that block. The rules enforced here:

* at most four breakpoints in all, counting the client's own (a fifth is a 400 upstream); a
  top-level ``cache_control`` (automatic caching) takes one slot;
* 1-hour breakpoints never after 5-minute ones (also a 400); where a client breakpoint forces it
  ours is adjusted: downgraded to 5m after a client 5m one, upgraded to 1h before a client 1h one
  (free: the later 1h entry bills those tokens at the 1h rate anyway);
* never on a prefix shorter than the model's minimum cacheable length (nothing would be cached and
  the slot would be wasted); lengths are estimated, see :func:`estimate_tokens`;
* client breakpoints are left alone unless ``respect_client`` is off, in which case they are
  removed and replaced by ours.

The three places are the tool list (last tool), the system prompt (last system block) and the
task context (last content block of the first user message: the task statement and documents an
agent carries through every turn; only when later turns follow it). When slots run short the
earliest place is dropped first: a later breakpoint still caches everything before it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Ttl = Literal["5m", "1h"]
Place = Literal["tools", "system", "taskContext"]
PLACES: tuple[Place, ...] = ("tools", "system", "taskContext")
MAX_BREAKPOINTS = 4

# Characters per token for the estimate. Claude tokenizers give roughly 3.5 characters per token on
# English prose (newer ones more tokens, not fewer), so this errs towards a higher count; code, JSON
# and non-Latin scripts tokenize denser still.
CHARS_PER_TOKEN = 3.5
IMAGE_TOKENS = 1_500  # a typical image; the real figure is width*height/750, unknown without decoding
_UNCACHEABLE_TYPES = {"thinking", "redacted_thinking"}


@dataclass(frozen=True)
class PlaceRule:
    enabled: bool
    ttl: Ttl


@dataclass(frozen=True)
class Placed:
    place: Place
    ttl: Ttl
    prefix_tokens: int  # estimated


@dataclass(frozen=True)
class Skipped:
    place: Place
    reason: str


@dataclass
class Placement:
    body: dict[str, Any]
    placed: list[Placed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    client_breakpoints: int = 0

    @property
    def total_breakpoints(self) -> int:
        return self.client_breakpoints + len(self.placed)


def estimate_tokens(block: Any) -> int:
    """A deterministic, tokenizer-free estimate of one block's tokens (text, tool, image, ...)."""
    if isinstance(block, str):
        return math.ceil(len(block) / CHARS_PER_TOKEN)
    if isinstance(block, Mapping):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            return math.ceil(len(block["text"]) / CHARS_PER_TOKEN) + 3
        if kind == "image":
            return IMAGE_TOKENS
        if kind == "tool_result" and isinstance(block.get("content"), list):
            return sum(estimate_tokens(b) for b in block["content"]) + 5
        shown = {k: v for k, v in block.items() if k != "cache_control"}
        return math.ceil(len(json.dumps(shown, ensure_ascii=False)) / CHARS_PER_TOKEN)
    return math.ceil(len(json.dumps(block, ensure_ascii=False, default=str)) / CHARS_PER_TOKEN)


def _ttl_of(cache_control: Any) -> Ttl:
    if isinstance(cache_control, Mapping) and cache_control.get("ttl") == "1h":
        return "1h"
    return "5m"


@dataclass
class _Slot:
    """One block that can carry a breakpoint, in Anthropic's processing order."""

    index: int
    prefix_tokens: int
    owner: str  # "tools" | "system" | "message:<i>"


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _cacheable(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") in _UNCACHEABLE_TYPES:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def _first_user_index(messages: Sequence[Any]) -> int | None:
    for i, message in enumerate(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return i
    return None


def place_breakpoints(
    body: Mapping[str, Any],
    rules: Mapping[Place, PlaceRule],
    *,
    min_tokens: int,
    respect_client: bool = True,
) -> Placement:
    """Return a copy of ``body`` with our breakpoints added; ``body`` itself is not modified."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    result = Placement(body=out)

    # A string system prompt or message is one text block; it is wrapped into a list only when a
    # breakpoint lands on it, so requests we do not mark are forwarded as the client wrote them.
    wraps: dict[int, tuple[dict[str, Any], str]] = {}  # id(container) -> (parent, key) to wrap into

    def blocks_of(parent: dict[str, Any], key: str) -> list[Any]:
        value = parent.get(key)
        if isinstance(value, list):
            return value
        if isinstance(value, str) and value:
            virtual = _as_blocks(value)
            wraps[id(virtual)] = (parent, key)
            return virtual
        return []

    messages: list[Any] = out["messages"] if isinstance(out.get("messages"), list) else []
    first_user = _first_user_index(messages)
    sequence: list[tuple[str, list[Any], int]] = []  # (owner, container, index) in processing order
    tools = blocks_of(out, "tools")
    sequence += [("tools", tools, i) for i in range(len(tools))]
    system = blocks_of(out, "system")
    sequence += [("system", system, i) for i in range(len(system))]
    for m, message in enumerate(messages):
        if isinstance(message, dict):
            content = blocks_of(message, "content")
            sequence += [(f"message:{m}", content, i) for i in range(len(content))]

    if not respect_client:
        out.pop("cache_control", None)
        for _, container, i in sequence:
            if isinstance(container[i], dict):
                container[i].pop("cache_control", None)

    # Prefix lengths and the client's breakpoints, as (position, ttl).
    slots: list[_Slot] = []
    client: list[tuple[int, Ttl]] = []
    running = 0
    for pos, (owner, container, i) in enumerate(sequence):
        block = container[i]
        running += estimate_tokens(block)
        slots.append(_Slot(i, running, owner))
        if isinstance(block, Mapping) and "cache_control" in block:
            client.append((pos, _ttl_of(block["cache_control"])))
    if "cache_control" in out:
        # Automatic caching puts its breakpoint on the last cacheable block and uses a slot.
        client.append((len(sequence), _ttl_of(out["cache_control"])))
    result.client_breakpoints = len(client)

    # Where each configured place would go.
    wanted: list[tuple[Place, int]] = []
    for place in PLACES:
        rule = rules.get(place)
        if rule is None or not rule.enabled:
            continue
        owner = {"tools": "tools", "system": "system", "taskContext": f"message:{first_user}"}[place]
        positions = [
            p for p, s in enumerate(slots) if s.owner == owner and _cacheable(sequence[p][1][s.index])
        ]
        if place == "taskContext" and first_user is None:
            result.skipped.append(Skipped(place, "no user message"))
            continue
        if place == "taskContext" and first_user == len(messages) - 1:
            # A single-turn request: its question is the task context, and writing it would pay the
            # write premium for a prefix only a repeat of the same question could read.
            result.skipped.append(Skipped(place, "the first user message is the last message (single turn)"))
            continue
        if not positions:
            result.skipped.append(Skipped(place, "nothing to cache there"))
            continue
        pos = positions[-1]
        if any(p == pos for p, _ in client):
            result.skipped.append(Skipped(place, "the client already placed a breakpoint there"))
            continue
        if slots[pos].prefix_tokens < min_tokens:
            result.skipped.append(
                Skipped(
                    place, f"prefix of ~{slots[pos].prefix_tokens} tokens is below the minimum {min_tokens}"
                )
            )
            continue
        wanted.append((place, pos))

    free = max(0, MAX_BREAKPOINTS - len(client))
    while len(wanted) > free:
        dropped, _ = wanted.pop(0)
        result.skipped.append(Skipped(dropped, f"no breakpoint slot left ({len(client)} used by the client)"))

    for place, pos in wanted:
        ttl: Ttl = rules[place].ttl
        if ttl == "5m" and any(p > pos and t == "1h" for p, t in client):
            ttl = "1h"
        if ttl == "1h" and any(p < pos and t == "5m" for p, t in client):
            ttl = "5m"
        owner, container, i = sequence[pos]
        container[i]["cache_control"] = {"type": "ephemeral", "ttl": ttl}
        if id(container) in wraps:
            parent, key = wraps[id(container)]
            parent[key] = container
        result.placed.append(Placed(place, ttl, slots[pos].prefix_tokens))
    return result


def count_breakpoints(body: Mapping[str, Any]) -> list[Ttl]:
    """TTLs of every breakpoint in ``body`` in processing order (top-level automatic one last)."""
    found: list[Ttl] = []

    def scan(blocks: Any) -> None:
        if isinstance(blocks, list):
            for block in blocks:
                if isinstance(block, Mapping) and "cache_control" in block:
                    found.append(_ttl_of(block["cache_control"]))

    scan(body.get("tools"))
    scan(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            scan(message.get("content"))
    if "cache_control" in body:
        found.append(_ttl_of(body["cache_control"]))
    return found
