"""A reconcile after a child Deployment event applies only what could have changed.

A rollout updates the Deployment's status several times; re-applying the four unchanged children on
each of those events was most of the operator's API traffic at scale. Drift must still be repaired.
"""

from __future__ import annotations

import pytest
from test_handlers import Clock, RecordingKube, RecordingStore, _stored_policy, conditions

from hermes_operator.env import Env
from hermes_operator.metrics import OperatorMetrics
from hermes_operator.reconcile import owner_policy, reconcile, reconcile_owner

KEY = ("Deployment", "team-a", "hermes-8b")


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


@pytest.fixture
def env(kube: RecordingKube) -> Env:
    store = RecordingStore()
    return Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())


def _owner(kube: RecordingKube) -> tuple[str, str, str]:
    owner = owner_policy(kube.objects[KEY])
    assert owner is not None
    return owner


def test_status_only_deployment_events_apply_nothing(env: Env, kube: RecordingKube) -> None:
    reconcile(_stored_policy(kube, replicas=2), env)
    applied = len(kube.applies)
    kube.set_deployment_status("team-a", "hermes-8b", ready=2)
    assert reconcile_owner(*_owner(kube), env)
    assert len(kube.applies) == applied
    policy = kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")]
    assert conditions(policy["status"])["Ready"]["status"] == "True"


def test_a_hand_scaled_deployment_is_put_back_after_its_event(env: Env, kube: RecordingKube) -> None:
    reconcile(_stored_policy(kube, replicas=2), env)
    dep = kube.objects[KEY]
    dep["spec"]["replicas"] = 5
    dep["metadata"]["generation"] += 1  # the API server bumps it on every spec change
    assert reconcile_owner(*_owner(kube), env)
    assert kube.objects[KEY]["spec"]["replicas"] == 2


def test_a_removed_label_is_put_back_after_its_event(env: Env, kube: RecordingKube) -> None:
    reconcile(_stored_policy(kube), env)
    labels = kube.objects[KEY]["metadata"]["labels"]
    gone = sorted(labels)[0]
    del labels[gone]  # a metadata edit leaves the generation as it was
    assert reconcile_owner(*_owner(kube), env)
    assert gone in kube.objects[KEY]["metadata"]["labels"]


def test_a_spec_change_applies_even_after_a_deployment_event(env: Env, kube: RecordingKube) -> None:
    reconcile(_stored_policy(kube, replicas=1), env)
    _stored_policy(kube, replicas=3)  # the policy as now stored: the Deployment event arrives first
    assert reconcile_owner(*_owner(kube), env)
    assert kube.objects[KEY]["spec"]["replicas"] == 3


def test_the_drift_pass_still_applies_every_child(env: Env, kube: RecordingKube) -> None:
    body = _stored_policy(kube)
    reconcile(body, env)
    applied = len(kube.applies)
    del kube.objects[("ConfigMap", "team-a", "hermes-8b-sidecar")]
    reconcile(body, env, read_stats=True)
    assert len(kube.applies) == 2 * applied
    assert any(k[0] == "ConfigMap" for k in kube.objects)
