"""Policy validation: what `plan` and the operator accept, and how a refusal reads."""

from __future__ import annotations

import pytest
from _policies import deep_merge, invalid_cases, policy_doc

from hermes_operator.spec import SpecError, parse_policy, parse_spec

CASES = invalid_cases()


def test_there_are_at_least_ten_invalid_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[f"{c['field']}={c['spec']}" for c in CASES])
def test_invalid_policy_is_refused_naming_the_field(case: dict) -> None:
    doc = policy_doc()
    doc["spec"] = deep_merge(doc["spec"], case["spec"])
    with pytest.raises(SpecError) as err:
        parse_policy(doc)
    text = str(err.value)
    assert case["field"] in text
    # every problem line starts with the path of the field (or its parent object) it is about
    assert all(line.startswith("spec.") for line in err.value.problems)


def test_gpu_memory_utilization_message_says_what_would_work() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"model": {"name": "x/y"}, "engine": {"gpuMemoryUtilization": 1.7}})
    (line,) = err.value.problems
    assert line.startswith("spec.engine.gpuMemoryUtilization:")
    assert "(0, 1]" in line and "1.7" in line and "0.9" in line


def test_extra_args_refusal_names_the_offending_flag() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {"model": {"name": "x/y"}, "engine": {"extraArgs": ["--enforce-eager", "--max-model-len=9"]}}
        )
    assert "--max-model-len=9" in str(err.value)
    assert "--enforce-eager'" not in str(err.value)


def test_harmless_extra_args_pass() -> None:
    spec = parse_spec(
        {
            "model": {"name": "x/y"},
            "engine": {"extraArgs": ["--enforce-eager", "--model-impl=vllm", "--seed=1"]},
        }
    )
    assert spec.engine.extraArgs == ["--enforce-eager", "--model-impl=vllm", "--seed=1"]


def test_unknown_field_is_refused_instead_of_ignored() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"model": {"name": "x/y"}, "engine": {"gpuMemoryUtilisation": 0.8}})
    assert "spec.engine.gpuMemoryUtilisation: unknown field" in str(err.value)


def test_missing_model_name_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"engine": {}})
    assert "spec.model: required field is missing" in str(err.value)


def test_defaults_fill_every_optional_field() -> None:
    spec = parse_spec({"model": {"name": "x/y"}})
    assert spec.engine.tensorParallelSize == 1
    assert spec.engine.blockSize == 16
    assert spec.engine.prefixCaching is True
    assert spec.replicas == 1
    assert spec.cacheVersion == "v1"
    assert spec.semanticCache.redis is None
    assert spec.autoscaling.enabled is False


def test_metadata_name_must_leave_room_for_child_names() -> None:
    with pytest.raises(SpecError) as err:
        parse_policy(policy_doc(name="x" * 60))
    assert "metadata.name" in str(err.value)


def test_wrong_kind_is_refused() -> None:
    doc = policy_doc()
    doc["kind"] = "Deployment"
    with pytest.raises(SpecError) as err:
        parse_policy(doc)
    assert "kind: must be HermesCachePolicy" in str(err.value)


def test_several_problems_are_reported_at_once() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"model": {"name": "x/y"}, "replicas": -2, "engine": {"gpuMemoryUtilization": 2}})
    fields = {p.split(":")[0] for p in err.value.problems}
    assert {"spec.replicas", "spec.engine.gpuMemoryUtilization"} <= fields


def test_a_password_given_twice_is_refused_without_echoing_it() -> None:
    redis = {"url": "redis://default:s3cret@redis:6379/0", "passwordSecretRef": {"name": "redis-auth"}}
    with pytest.raises(SpecError) as err:
        parse_policy(policy_doc(semanticCache={"redis": redis}))
    (line,) = err.value.problems
    assert line.startswith("spec.semanticCache.redis: ") and "the password is given twice" in line
    assert "s3cret" not in line and "redis://default:***@redis:6379/0" in line


def test_password_secret_ref_defaults_its_key() -> None:
    redis = {"url": "redis://redis:6379/0", "passwordSecretRef": {"name": "redis-auth"}}
    ref = parse_policy(policy_doc(semanticCache={"redis": redis})).spec.semanticCache.redis
    assert ref is not None and ref.passwordSecretRef is not None
    assert (ref.passwordSecretRef.name, ref.passwordSecretRef.key) == ("redis-auth", "password")


def test_a_refused_redis_url_is_shown_without_its_password() -> None:
    with pytest.raises(SpecError) as err:
        parse_policy(policy_doc(semanticCache={"redis": {"url": "http://user:s3cret@redis:6379"}}))
    (line,) = err.value.problems
    assert line.startswith("spec.semanticCache.redis.url: ") and "s3cret" not in line


VERIFIER = {"url": "http://verifier:8000", "model": "BAAI/bge-reranker-v2-m3"}


def test_verifier_is_optional_and_defaults_its_settings() -> None:
    assert parse_spec({"model": {"name": "x/y"}}).semanticCache.verifier is None
    v = parse_spec({"model": {"name": "x/y"}, "semanticCache": {"verifier": VERIFIER}}).semanticCache.verifier
    assert v is not None
    assert (v.minScore, v.minSimilarity, v.timeoutSeconds, v.onError) == (0.5, 0.7, 1.0, "threshold")
    assert v.apiKeySecretRef is None


def test_verifier_min_similarity_above_the_threshold_names_both_values_and_a_fix() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {
                "model": {"name": "x/y"},
                "semanticCache": {"similarityThreshold": 0.8, "verifier": {**VERIFIER, "minSimilarity": 0.9}},
            }
        )
    (line,) = err.value.problems
    assert line.startswith("spec.semanticCache: spec.semanticCache.verifier.minSimilarity must be <= ")
    assert "(0.9, 0.8)" in line and "for example to 0.7" in line


def test_verifier_min_similarity_equal_to_the_threshold_is_accepted() -> None:
    spec = parse_spec(
        {"model": {"name": "x/y"}, "semanticCache": {"verifier": {**VERIFIER, "minSimilarity": 0.85}}}
    )
    assert spec.semanticCache.verifier is not None and spec.semanticCache.verifier.minSimilarity == 0.85


def test_a_refused_verifier_url_says_what_would_work_without_its_password() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {"model": {"name": "x/y"}, "semanticCache": {"verifier": {**VERIFIER, "url": "ftp://u:s3cret@v"}}}
        )
    (line,) = err.value.problems
    assert line.startswith("spec.semanticCache.verifier.url: ") and "http:// or https://" in line
    assert "s3cret" not in line and "ftp://u:***@v" in line
