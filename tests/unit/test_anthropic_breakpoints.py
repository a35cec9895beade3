"""Breakpoint placement: where the sidecar puts cache_control, and the limits it never crosses."""

from __future__ import annotations

import copy
from typing import Any

from hermes_sidecar.dialects.anthropic.breakpoints import (
    PlaceRule,
    count_breakpoints,
    estimate_tokens,
    place_breakpoints,
)

LONG = "Follow the house style guide in every answer. " * 300  # ~3,900 estimated tokens
RULES = {
    "tools": PlaceRule(True, "1h"),
    "system": PlaceRule(True, "1h"),
    "taskContext": PlaceRule(True, "5m"),
}
TOOLS = [
    {
        "name": f"tool_{i}",
        "description": "Look a thing up. " * 40,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    for i in range(8)
]


def request(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 256,
        "system": LONG,
        "messages": [
            {"role": "user", "content": "Task: summarise the attached contract. " + "Clause text. " * 400},
            {"role": "assistant", "content": "Which part first?"},
            {"role": "user", "content": "Start with termination."},
        ],
    }
    body.update(extra)
    return body


def test_places_tools_system_and_task_context_in_order_with_1h_first() -> None:
    original = request(tools=copy.deepcopy(TOOLS))
    frozen = copy.deepcopy(original)
    result = place_breakpoints(original, RULES, min_tokens=1024)
    assert original == frozen, "the client's body must not be modified in place"
    assert [p.place for p in result.placed] == ["tools", "system", "taskContext"]
    assert count_breakpoints(result.body) == ["1h", "1h", "5m"]
    assert "cache_control" in result.body["tools"][-1]
    assert result.body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    first_user = result.body["messages"][0]["content"]
    assert first_user[-1]["cache_control"]["ttl"] == "5m"
    assert first_user[-1]["text"].startswith("Task: summarise")
    # the later turns are untouched, still plain strings
    assert result.body["messages"][2]["content"] == "Start with termination."


def test_never_on_a_prefix_shorter_than_the_model_minimum() -> None:
    body = request(system="Be brief.", messages=[{"role": "user", "content": "Hi"}])
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert result.placed == []
    assert count_breakpoints(result.body) == []
    assert result.body["system"] == "Be brief.", "an unmarked string system prompt is forwarded as written"
    assert {s.place for s in result.skipped} == {"tools", "system", "taskContext"}
    # the short tool list alone is skipped, but the system breakpoint covers tools + system
    small_tools = [{"name": "t", "description": "x", "input_schema": {"type": "object"}}]
    result = place_breakpoints(request(tools=small_tools), RULES, min_tokens=1024)
    assert [p.place for p in result.placed] == ["system", "taskContext"]


def test_the_minimum_counts_the_whole_prefix_not_just_the_block() -> None:
    # system alone is below 4,096 estimated tokens, but tools before it push the prefix over
    body = request(tools=copy.deepcopy(TOOLS))
    system_prefix = estimate_tokens({"type": "text", "text": LONG})
    assert system_prefix < 4096
    result = place_breakpoints(body, {"system": PlaceRule(True, "5m")}, min_tokens=4096)
    assert [p.place for p in result.placed] == ["system"]
    assert result.placed[0].prefix_tokens > 4096


def test_client_breakpoints_are_left_alone_and_count_against_four() -> None:
    body = request(tools=copy.deepcopy(TOOLS))
    body["messages"] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Doc A " * 800, "cache_control": {"type": "ephemeral"}}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "Doc B " * 50, "cache_control": {"type": "ephemeral"}}],
        },
    ]
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert result.client_breakpoints == 3
    assert len(count_breakpoints(result.body)) == 4
    # the client already marked the task-context block; of tools and system only the later fits
    assert [p.place for p in result.placed] == ["system"]
    # 1h before the client's 5m breakpoints is a valid order, so the configured TTL stands
    assert result.placed[0].ttl == "1h"
    for m_in, m_out in zip(body["messages"], result.body["messages"], strict=True):
        assert m_in == m_out


def test_four_client_breakpoints_leave_no_room() -> None:
    blocks = [
        {"type": "text", "text": f"part {i} " * 500, "cache_control": {"type": "ephemeral"}} for i in range(4)
    ]
    body = request(messages=[{"role": "user", "content": blocks}])
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert result.placed == []
    assert len(count_breakpoints(result.body)) == 4


def test_ttl_order_is_kept_around_client_breakpoints() -> None:
    # a client 5m breakpoint on the tools forces our later system breakpoint down to 5m
    tools = copy.deepcopy(TOOLS)
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    result = place_breakpoints(request(tools=tools), RULES, min_tokens=1024)
    assert count_breakpoints(result.body) == ["5m", "5m", "5m"]
    # a client 1h breakpoint after our 5m place lifts ours to 1h (those tokens bill at 1h anyway)
    body = request()
    body["messages"].append(
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "noted " * 10, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        }
    )
    body["messages"].append({"role": "user", "content": "go on"})
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert count_breakpoints(result.body) == ["1h", "1h", "1h"]


def test_top_level_automatic_caching_takes_a_slot() -> None:
    blocks = [
        {"type": "text", "text": f"part {i} " * 500, "cache_control": {"type": "ephemeral"}} for i in range(3)
    ]
    body = request(messages=[{"role": "user", "content": blocks}], cache_control={"type": "ephemeral"})
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert result.client_breakpoints == 4 and result.placed == []


def test_respect_client_off_replaces_client_breakpoints_with_ours() -> None:
    blocks = [
        {"type": "text", "text": f"part {i} " * 500, "cache_control": {"type": "ephemeral"}} for i in range(4)
    ]
    turns = [{"role": "user", "content": blocks}, {"role": "assistant", "content": "ok"},
             {"role": "user", "content": "next"}]  # fmt: skip
    body = request(messages=turns, cache_control={"type": "ephemeral", "ttl": "1h"})
    result = place_breakpoints(body, RULES, min_tokens=1024, respect_client=False)
    assert "cache_control" not in result.body
    assert [p.place for p in result.placed] == ["system", "taskContext"]
    assert count_breakpoints(result.body) == ["1h", "5m"]


def test_a_single_turn_question_is_not_marked_as_task_context() -> None:
    body = request(messages=[{"role": "user", "content": "Clause text. " * 900}])
    result = place_breakpoints(body, RULES, min_tokens=1024)
    assert [p.place for p in result.placed] == ["system"]
    assert any(s.place == "taskContext" and "single turn" in s.reason for s in result.skipped)


def test_disabled_places_and_uncacheable_blocks_are_skipped() -> None:
    body = request()
    body["messages"][0]["content"] = [
        {"type": "text", "text": "Clause. " * 900},
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
    ]
    rules = {"system": PlaceRule(False, "1h"), "taskContext": PlaceRule(True, "5m")}
    result = place_breakpoints(body, rules, min_tokens=1024)
    assert [p.place for p in result.placed] == ["taskContext"]
    assert "cache_control" in result.body["messages"][0]["content"][0]
    assert "cache_control" not in result.body["messages"][0]["content"][1]
