"""Tool plans (cache.toolPlans): a live-data question of a tool-using agent reuses the model's plan.

The live decision path (CacheService.decide / store_answer) with the real default embedder, the guard
and the in-memory store; requests are parsed by the OpenAI dialect from OpenAI tool-calling bodies.
tests/integration/test_sidecar_tool_plans.py runs the same through the HTTP sidecar, Redis and vLLM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes_operator.cli import main as operator_main
from hermes_sidecar.cache import BYPASS, HIT_EXACT, HIT_SEMANTIC, MISS, CacheService, Decision
from hermes_sidecar.cache.plans import PLAN, RESULTS, ToolCall, ToolPlans
from hermes_sidecar.config import ConfigError, ToolPlansConfig, parse_config
from hermes_sidecar.dialects.base import CachedAnswer
from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.keys import normalise
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store.memory import MemoryStore

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "description": "Weather forecast of a city for a date",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "date": {"type": "string"}},
                "required": ["city", "date"],
            },
        },
    },
]
QUESTION = "What's the weather in Paris today?"
PARAPHRASE = "How is the weather in Paris today?"  # cosine 0.954 with QUESTION


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def _completion(message: dict[str, Any], finish: str) -> CachedAnswer:
    return CachedAnswer(
        "openai",
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
        },
    )


def plan(*calls: tuple[str, dict[str, Any]], ids: str = "call_") -> CachedAnswer:
    tool_calls = [
        {"id": f"{ids}{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        for i, (name, args) in enumerate(calls)
    ]
    return _completion({"role": "assistant", "content": None, "tool_calls": tool_calls}, "tool_calls")


def text(content: str) -> CachedAnswer:
    return _completion({"role": "assistant", "content": content}, "stop")


def conversation(question: str, answer: CachedAnswer, results: list[str]) -> list[dict[str, Any]]:
    """question -> the plan -> one tool message per call, as an agent sends it back."""
    message = dict(answer.body["choices"][0]["message"])
    tool_msgs = [
        {"role": "tool", "tool_call_id": call["id"], "content": result}
        for call, result in zip(message["tool_calls"], results, strict=True)
    ]
    return [{"role": "user", "content": question}, message, *tool_msgs]


class Harness:
    def __init__(self, embedder: LocalEmbedder, **plans: Any) -> None:
        cfg = parse_config({"cache": {"toolPlans": plans}} if plans else {})
        self.metrics = Metrics()
        self.cache = CacheService(cfg.cache, MemoryStore(100), embedder, self.metrics, generation=LOCAL)
        self.dialect = OpenAIDialect()

    async def ask(
        self, messages: str | list[dict[str, Any]], answer: CachedAnswer | None = None, *, tools: bool = True
    ) -> Decision:
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        body: dict[str, Any] = {"model": "m", "messages": msgs, "temperature": 0}
        if tools:
            body["tools"] = TOOLS
        decision = await self.cache.decide(self.dialect.parse_request(CHAT, body), {}, "tenant-a")
        self.stored: bool | None = None  # what store_answer said for the answer given
        if answer is not None and decision.result == MISS:
            self.stored = await self.cache.store_answer(decision, answer)
        return decision

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


WEATHER = plan(("get_weather", {"city": "Paris"}))


async def test_off_by_default_a_live_data_question_is_passed_through(embedder: LocalEmbedder) -> None:
    h = Harness(embedder)
    decision = await h.ask(QUESTION, WEATHER)
    assert decision.result == BYPASS and decision.reason == "volatile"
    assert (await h.ask(QUESTION)).result == BYPASS


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("What's the weather in Oslo?", "volatile"),
        ("what is the weather like", "volatile"),
        ("Weather forecast for Lyon tomorrow", "volatile"),
        # the word alone asks about no live data
        ("What is the difference between weather and climate?", None),
        ("How does a heat pump keep a house warm in cold weather?", None),
    ],
)
def test_default_bypass_takes_live_weather_not_the_word(
    embedder: LocalEmbedder, question: str, reason: str | None
) -> None:
    request = OpenAIDialect().parse_request(
        CHAT, {"model": "m", "messages": [{"role": "user", "content": question}]}
    )
    assert Harness(embedder).cache.bypass_reason(request, {}) == reason


async def test_a_plan_is_reused_for_the_repeat_and_for_a_paraphrase(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, enabled=True)
    first = await h.ask(QUESTION, WEATHER)
    assert first.result == MISS and first.live and first.stage == PLAN and h.stored
    repeat = await h.ask(QUESTION)
    assert repeat.result == HIT_EXACT and repeat.entry is not None
    served = CachedAnswer.from_json(repeat.entry.answer).body["choices"][0]["message"]["tool_calls"]
    assert served[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    para = await h.ask(PARAPHRASE)
    assert para.result == HIT_SEMANTIC
    # another city is another plan: the guard refuses the entity swap
    assert (await h.ask("What's the weather in Berlin today?")).result == MISS
    assert h.sample("hermes_cache_tool_plan_requests_total", stage="plan", result="hit_semantic") == 1
    assert h.sample("hermes_cache_tool_plan_requests_total", stage="plan", result="miss") == 2
    assert h.sample("hermes_cache_bypass_total", reason="volatile") == 0


async def test_semantic_false_reuses_plans_for_exact_repeats_only(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, enabled=True, semantic=False)
    await h.ask(QUESTION, WEATHER)
    assert (await h.ask(QUESTION)).result == HIT_EXACT
    para = await h.ask(PARAPHRASE)
    assert para.result == MISS and para.reason == "tool-plans-exact-only"


async def test_a_plan_whose_arguments_depend_on_time_is_never_stored(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, enabled=True)
    question = "What's the weather forecast for Paris tomorrow?"
    for dated in (
        plan(("get_forecast", {"city": "Paris", "date": "2026-12-05"})),
        plan(("get_forecast", {"city": "Paris", "date": "tomorrow"})),
    ):
        decision = await h.ask(question, dated)
        assert decision.result == MISS and h.stored is False
    assert h.sample("hermes_cache_not_stored_total", reason="plan-depends-on-time") == 2
    assert (await h.ask(question)).result == MISS


async def test_a_text_answer_to_a_live_data_question_is_not_stored(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, enabled=True)
    await h.ask(QUESTION, text("It is sunny in Paris."))
    assert h.stored is False
    assert h.sample("hermes_cache_not_stored_total", reason="not-a-plan") == 1
    assert (await h.ask(QUESTION)).result == MISS


async def test_the_answer_from_tool_results_is_reused_only_for_identical_results(
    embedder: LocalEmbedder,
) -> None:
    h = Harness(embedder, enabled=True)
    rain = '{"city": "Paris", "temp_c": 14, "sky": "rain"}'
    first = await h.ask(conversation(QUESTION, WEATHER, [rain]), text("14 °C and rain in Paris."))
    assert first.result == MISS and first.stage == RESULTS and h.stored
    # the same results, though the agent's run gave the call another id
    other_ids = plan(("get_weather", {"city": "Paris"}), ids="call_zz")
    again = await h.ask(conversation(QUESTION, other_ids, [rain]))
    assert again.result == HIT_EXACT
    # a paraphrased question over identical results: the guard accepts it
    assert (await h.ask(conversation(PARAPHRASE, WEATHER, [rain]))).result == HIT_SEMANTIC
    # the live data moved: a miss
    sun = '{"city": "Paris", "temp_c": 15, "sky": "sun"}'
    assert (await h.ask(conversation(QUESTION, WEATHER, [sun]))).result == MISS
    assert h.sample("hermes_cache_tool_plan_requests_total", stage="results", result="hit_exact") == 1


async def test_plans_live_apart_from_ordinary_entries(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, enabled=True)
    live = await h.ask(QUESTION)
    ordinary = await h.ask("How do I convert Celsius to Fahrenheit?")
    assert live.live and not ordinary.live
    assert live.keys is not None and ordinary.keys is not None
    assert live.keys.partition != ordinary.keys.partition


async def test_with_tool_plans_on_no_plan_with_a_date_is_stored_for_any_question(
    embedder: LocalEmbedder,
) -> None:
    question = "Book the meeting room for the design review with Anna"
    booked = plan(("book_room", {"room": "Orion", "start": "2026-12-11T10:00"}))
    off = Harness(embedder)
    await off.ask(question, booked)
    assert off.stored
    on = Harness(embedder, enabled=True)
    decision = await on.ask(question, booked)
    assert not decision.live and on.stored is False
    # a text answer to an ordinary question is stored as always
    await on.ask("Which rooms can hold twelve people?", text("Orion and Vega."))
    assert on.stored


@pytest.mark.parametrize(
    ("arguments", "dependent"),
    [
        ({"city": "Paris"}, None),
        ({"base": "EUR", "quote": "USD"}, None),
        ({"query": "latest news about the Artemis mission"}, None),
        ({"symbol": "AAPL", "limit": 5}, None),
        ({"room": "Room 12", "floor": 3}, None),
        ({"date": "2026-12-05"}, "2026-12-05"),
        ({"when": {"from": "12/04/2026"}}, "12/04/2026"),
        ({"at": "14:30"}, "14:30"),
        ({"since": 1796372838}, "1796372838"),
        ({"day": "Dec 5"}, "Dec 5"),
        ({"day": "5th of May"}, None),
        ({"day": "5 May"}, "5 May"),
        ({"range": "tomorrow"}, "tomorrow"),
        ({"range": "next week"}, "next week"),
        ({"range": "last 3 days"}, "last 3 days"),
        ({"q": "flights leaving now"}, "flights leaving now"),
    ],
)
def test_the_time_rule_on_tool_call_arguments(arguments: dict[str, Any], dependent: str | None) -> None:
    plans = ToolPlans(ToolPlansConfig(enabled=True))
    assert plans.time_dependent([ToolCall("f", arguments)]) == dependent


FX_PLAN = plan(("get_exchange_rate", {"base": "EUR", "quote": "USD"}))


async def test_a_paraphrase_is_served_a_plan_only_when_it_names_every_argument(
    embedder: LocalEmbedder,
) -> None:
    h = Harness(embedder, enabled=True)
    await h.ask("What's the euro to dollar exchange rate today?", FX_PLAN)
    # near in cosine (0.89 > the 0.85 threshold) and the guard knows no currencies: the plan's EUR and
    # USD are not in the question, so it is not served (it was, before the rule: the wrong live data)
    other = await h.ask("What's the exchange rate from pounds to yen today?")
    assert other.result == MISS
    vecs = await embedder.embed(
        [
            normalise("What's the euro to dollar exchange rate today?"),
            normalise("What's the exchange rate from pounds to yen today?"),
        ]
    )
    assert (
        float(vecs[0] @ vecs[1]) > parse_config({}).cache.similarityThreshold
    )  # cosine alone would serve it
    # a paraphrase in the plan's own terms is still served
    await h.ask("What is the EUR to USD exchange rate today?", FX_PLAN)
    para = await h.ask("what is the EUR/USD exchange rate today")
    assert para.result == HIT_SEMANTIC and para.entry is not None
    served = CachedAnswer.from_json(para.entry.answer).body["choices"][0]["message"]["tool_calls"]
    assert json.loads(served[0]["function"]["arguments"]) == {"base": "EUR", "quote": "USD"}


@pytest.mark.parametrize(
    ("calls", "stored", "asked", "served"),
    [
        (
            [("get_exchange_rate", {"base": "EUR", "quote": "USD"})],
            "euro to dollar rate today",
            "pounds to yen rate today",
            False,
        ),
        (
            [("get_exchange_rate", {"base": "EUR", "quote": "USD"})],
            "EUR to USD rate today",
            "EUR/USD rate right now",
            True,
        ),
        (
            [("get_exchange_rate", {"base": "EUR", "quote": "USD"})],
            "EUR to USD rate today",
            "EUR to GBP rate today",
            False,
        ),
        (
            [("get_stock_quote", {"symbol": "AAPL"})],
            "AAPL stock price today",
            "Apple's stock price today",
            False,
        ),
        (
            [("get_service_status", {"service": "payments-api"})],
            "is payments-api up now",
            "is the Payments API up now",
            True,
        ),
        (
            [("get_service_status", {"service": "payments-api", "region": "eu-west-1"})],
            "payments API in eu-west-1",
            "payments API in us-east-1",
            False,
        ),
        # a number the question does not say (a default the model chose) need not be in the new one
        (
            [("search_news", {"topic": "Artemis", "limit": 5})],
            "latest Artemis news",
            "news on Artemis, latest",
            True,
        ),
        # a number the stored question says must be in the new one too
        (
            [("search_news", {"topic": "Artemis", "limit": 5})],
            "top 5 Artemis news",
            "top 10 Artemis news",
            False,
        ),
        (
            [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Berlin"})],
            "Paris and Berlin",
            "Paris and London",
            False,
        ),
        # an exact repeat (no question to compare) is served
        ([("get_stock_quote", {"symbol": "AAPL"})], None, None, True),
    ],
)
def test_servable_needs_every_string_argument_in_the_new_question(
    calls: list[tuple[str, dict[str, Any]]], stored: str | None, asked: str | None, served: bool
) -> None:
    plans = ToolPlans(ToolPlansConfig(enabled=True))
    assert plans.servable(plan(*calls).to_json(), asked, stored) is served


def test_a_bad_time_pattern_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"cache": {"toolPlans": {"enabled": True, "timePatterns": ["(unclosed"]}}})
    assert "cache.toolPlans.timePatterns: '(unclosed' is not a valid regular expression" in str(err.value)


def test_plan_renders_tool_plans_and_decay_into_the_sidecar_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "apiVersion": "hermes-cache.dev/v1alpha1",
        "kind": "HermesCachePolicy",
        "metadata": {"name": "agents", "namespace": "team-a"},
        "spec": {
            "model": {"name": "NousResearch/Hermes-3-Llama-3.1-8B"},
            "semanticCache": {
                "toolPlans": {"semantic": False},
                "decay": {"mode": "linear", "rampSeconds": 86400, "halfLifeSeconds": 60},
            },
        },
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert operator_main(["plan", str(path), "-o", "json"]) == 0
    resources = json.loads(capsys.readouterr().out)["resources"]
    (cm,) = [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "agents-sidecar"]
    cache = yaml.safe_load(next(iter(cm["data"].values())))["cache"]
    assert cache["toolPlans"] == {"enabled": True, "semantic": False}
    # only the length the mode reads goes to the sidecar
    assert cache["decay"] == {"mode": "linear", "rampSeconds": 86400, "ceiling": 0.98, "exact": False}
    assert parse_config({"cache": cache}).cache.toolPlans.enabled


async def test_the_agent_trace_replays_through_the_live_path(embedder: LocalEmbedder) -> None:
    # bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench import tool_plans

    rows = tool_plans.load_trace()
    assert len(rows) >= 60 and len({r["group"] for r in rows}) >= 20
    off = await tool_plans.replay(rows, parse_config({}), embedder)
    assert off["live_data_questions"] == len(rows) and off["plan"] == {BYPASS: len(rows)}
    on = await tool_plans.replay(rows, parse_config({"cache": {"toolPlans": {"enabled": True}}}), embedder)
    assert on["plan"].get(HIT_SEMANTIC, 0) > 0 and on["upstream_calls"] < off["upstream_calls"]
    # every forecast plan carries tomorrow's date: refused each time one is asked
    forecasts = sum(r["group"].startswith("forecast-") for r in rows)
    assert on["refused_by_time_rule"] == forecasts
    assert on["results_wrong"] == []
