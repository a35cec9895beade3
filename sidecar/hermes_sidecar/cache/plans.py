"""Tool plans: partial caching of questions about live data for tool-using agents (``cache.toolPlans``).

A question that matches ``cache.bypass.patterns`` ("weather", "today", "exchange rate") is passed
through whole when tool plans are off. With them on, a request that offers ``tools`` is split in two
stages, each cached by its own rule:

``plan``     the request ends with the user's question. Its answer may be the model's plan: an
             assistant turn that calls tools. A plan is stored, and served (exactly or, with
             ``semantic``, to a paraphrase the guard accepts), only when it calls tools and no string
             or number in its arguments matches ``timePatterns`` (dates, times of day, epoch
             timestamps, relative-time words): such a plan says what to fetch, not when, so it holds
             tomorrow too and the agent still fetches the live data itself. A paraphrase is served a
             plan only when it mentions every string argument of the plan (``servable``). An answer
             without tool calls (the model answered from what it knew) is never stored for a
             live-data question.
``results``  the request ends with tool results. Its answer is reused only when the tool calls and
             their results since the question are identical: they are hashed into the partition, with
             the clients' tool-call ids renamed by order of appearance (ids are random per run). The
             question itself must match exactly or, with ``semantic``, be a paraphrase the guard
             accepts when it opens the conversation.

Plan entries live in partitions of their own (a ``plan`` marker, or the digest of the results), so a
live-data question never sees an ordinary entry and an ordinary question never sees a plan.

With tool plans on, a plan whose arguments depend on time is never stored for any question: "book a
room for next Friday" answered with ``book(date="2026-12-11")`` would book the wrong day a week later.
Answers to tool results are exempt: the results they answer are pinned in their key.

Plans are read from the stored answer's canonical form: OpenAI ``choices[].message.tool_calls``
(``function.arguments`` is a JSON string) and Anthropic ``content[]`` blocks of type ``tool_use``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hermes_sidecar.config import ToolPlansConfig
from hermes_sidecar.dialects.base import CacheableRequest, CachedAnswer, Turn, canonical_json
from hermes_sidecar.keys import ConversationLimits, Keys, normalise, standalone

__all__ = ["PLAN", "RESULTS", "ToolCall", "ToolPlans", "tool_calls_of"]

PLAN, RESULTS = "plan", "results"
# not_stored reasons
NOT_A_PLAN, TIME_DEPENDENT = "not-a-plan", "plan-depends-on-time"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any  # decoded JSON where it decodes, else the raw string


def _decoded(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def tool_calls_of(body: Mapping[str, Any]) -> list[ToolCall]:
    """The tool calls a stored answer makes (empty for an answer in text only)."""
    calls: list[ToolCall] = []
    choices = body.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            message = choice.get("message") if isinstance(choice, Mapping) else None
            raw = message.get("tool_calls") if isinstance(message, Mapping) else None
            for call in raw if isinstance(raw, list) else []:
                fn = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(fn, Mapping):
                    calls.append(ToolCall(str(fn.get("name", "")), _decoded(fn.get("arguments"))))
    content = body.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                calls.append(ToolCall(str(block.get("name", "")), block.get("input")))
    return calls


def _leaves(value: Any) -> Iterator[Any]:
    """Every value in a decoded JSON value that is neither an object nor a list (keys are names)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _scalars(value: Any) -> Iterator[str]:
    """Every string and number in a decoded JSON value (keys are names, not values)."""
    for leaf in _leaves(value):
        if isinstance(leaf, str):
            yield leaf
        elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
            yield str(leaf)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value (keys are names, not values)."""
    return (leaf for leaf in _leaves(value) if isinstance(leaf, str))


def _canonical_turns(turns: Sequence[Turn], ids: dict[str, str]) -> list[Any]:
    """Turns as hashed for the results stage: tool-call ids renamed by order of appearance (``ids``
    is shared across calls so one conversation keeps one naming), arguments decoded."""

    def rename(value: Any) -> Any:
        return ids.setdefault(value, f"#{len(ids)}") if isinstance(value, str) else value

    out: list[Any] = []
    for t in turns:
        s: Any = json.loads(t.structured) if t.structured else {}
        if isinstance(s, dict):
            if "tool_call_id" in s:
                s["tool_call_id"] = rename(s["tool_call_id"])
            for call in s.get("tool_calls") or []:
                if isinstance(call, dict):
                    if "id" in call:
                        call["id"] = rename(call["id"])
                    fn = call.get("function")
                    if isinstance(fn, dict) and "arguments" in fn:
                        fn["arguments"] = _decoded(fn["arguments"])
            for part in s.get("parts") or []:
                if isinstance(part, dict) and part.get("type") == "tool_use" and "id" in part:
                    part["id"] = rename(part["id"])
                if isinstance(part, dict) and part.get("type") == "tool_result" and "tool_use_id" in part:
                    part["tool_use_id"] = rename(part["tool_use_id"])
        out.append([t.role, normalise(t.text), s, t.is_tool_result])
    return out


def _question_index(turns: Sequence[Turn]) -> int | None:
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user" and not turns[i].is_tool_result:
            return i
    return None


class ToolPlans:
    def __init__(self, cfg: ToolPlansConfig) -> None:
        self.cfg = cfg
        self._time = [re.compile(p, re.IGNORECASE) for p in cfg.timePatterns]

    # -- which stage -------------------------------------------------------------------------------

    @staticmethod
    def stage(req: CacheableRequest) -> str | None:
        """``plan`` (ends with the question), ``results`` (ends with tool results), or None: the
        request offers no tools, or ends otherwise."""
        tools = req.body.get("tools")
        if not isinstance(tools, list) or not tools or not req.turns:
            return None
        last = req.turns[-1]
        if last.is_tool_result:
            return RESULTS if _question_index(req.turns) is not None else None
        return PLAN if last.role == "user" else None

    # -- keys --------------------------------------------------------------------------------------

    def keys(self, stage: str, req: CacheableRequest, base: Keys, limits: ConversationLimits) -> Keys:
        """The stage's keys: its own partition next to the request's ordinary one."""
        if stage == PLAN:
            partition = _sha(base.partition + "\0tool-plan")[:32]
            exact = _sha(partition + "\0" + base.exact)[:40]
            if not self.cfg.semantic and base.semantic_text is not None:
                return Keys(partition, exact, None, base.context_text, "tool-plans-exact-only")
            return Keys(partition, exact, base.semantic_text, base.context_text, base.refusal)
        q = _question_index(req.turns)
        assert q is not None  # stage() said results
        ids: dict[str, str] = {}
        before = _canonical_turns(req.turns[: q + 1], ids)
        after = _canonical_turns(req.turns[q + 1 :], ids)
        partition = _sha(base.partition + "\0tool-results\0" + canonical_json(after))[:32]
        exact = _sha(partition + "\0" + canonical_json(before))[:40]
        question = normalise(req.turns[q].text)
        refusal: str | None = None
        if not self.cfg.semantic:
            refusal = "tool-plans-exact-only"
        elif q > 0 or not limits.semantic:
            refusal = "conversation"
        elif not question or not standalone(question, limits.min_standalone_words):
            refusal = "ambiguous-last-turn"
        return Keys(partition, exact, None if refusal else question, "", refusal)

    # -- what is stored and served -----------------------------------------------------------------

    def time_dependent(self, calls: Sequence[ToolCall]) -> str | None:
        """The first argument value that ties a plan to the moment it was made, or None."""
        for call in calls:
            for value in _scalars(call.arguments):
                if any(p.search(value) for p in self._time):
                    return value
        return None

    def refusal(self, stage: str | None, live: bool, answer: CachedAnswer) -> str | None:
        """Why ``answer`` must not be stored (a not_stored reason), or None. ``stage`` is the request's
        (None: it offers no tools); ``live``: a live-data question that went through the cache."""
        if stage == RESULTS:
            return None  # the results it answers are pinned in its key
        calls = tool_calls_of(answer.body)
        if live and not calls:
            return NOT_A_PLAN
        if calls and self.time_dependent(calls) is not None:
            return TIME_DEPENDENT
        return None

    def servable(self, answer_json: str, asked: str | None = None, stored: str | None = None) -> bool:
        """A plan-stage entry may be served: it calls tools, none depends on time (by the rules in
        force now, not those it was stored under), and, for a paraphrase (``asked``, of the entry's
        question ``stored``), the new question names what the plan fetches: every string argument
        value is mentioned in ``asked`` (case, spaces and ``-_/.,`` aside), and every other value
        (a number) the stored question mentions is mentioned in ``asked`` too. "euro to dollar"
        (``EUR``, ``USD``) serves neither "pounds to yen" nor "EUR/GBP", whatever the cosine; a
        question that names a thing another way than the plan ("Apple" for ``AAPL``) gets exact
        reuse only. Chosen on the tune half of bench/data/agent_trace.jsonl (docs/benchmarks.md 9)."""
        try:
            answer = CachedAnswer.from_json(answer_json)
        except (ValueError, KeyError, TypeError):
            return False
        calls = tool_calls_of(answer.body)
        if not calls or self.time_dependent(calls) is not None:
            return False
        if asked is None or stored is None:
            return True
        for call in calls:
            for value in _strings(call.arguments):
                if not _mentions(asked, value):
                    return False
            for value in _scalars(call.arguments):
                if _mentions(stored, value) and not _mentions(asked, value):
                    return False
        return True


_SEPARATORS = re.compile(r"[\s\-_/.,]+")


def _mentions(text: str, value: str) -> bool:
    """``value`` occurs in ``text`` as a whole word or phrase, case, spaces and the separators
    ``-_/.,`` aside ("payments-api" in "is the payments API up")."""
    needle = _SEPARATORS.sub(" ", value.lower()).strip()
    if len(needle) < 2 and not needle.isdigit():
        return False  # a single letter is no name; a single digit ("top 5") is a number
    hay = _SEPARATORS.sub(" ", text.lower())
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", hay) is not None
