"""Why replicas are not ready, as the policy's Ready condition tells it (podstatus + reconcile)."""

from __future__ import annotations

from typing import Any

from test_handlers import Clock, RecordingKube, RecordingStore, conditions, cr

from hermes_operator.env import Env
from hermes_operator.metrics import OperatorMetrics
from hermes_operator.podstatus import diagnose, restarts
from hermes_operator.reconcile import reconcile


def pod(
    name: str = "p-1", conditions: list[dict[str, Any]] | None = None, **container: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions or []}
    if container:
        status["containerStatuses"] = [{"name": "vllm", "image": "img:1", "ready": False, **container}]
    return {"metadata": {"name": name}, "status": status}


UNSCHEDULABLE = [
    {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/5 nodes are available: 4 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint.",
    }
]
CRASHED = {
    "restartCount": 5,
    "state": {
        "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container"}
    },
    "lastState": {
        "terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-12-04T05:00:00Z"}
    },
}


def test_unschedulable_pod_carries_the_schedulers_message() -> None:
    problem = diagnose([pod(conditions=UNSCHEDULABLE), pod("p-2", conditions=UNSCHEDULABLE)])
    assert problem is not None and problem.reason == "Unschedulable"
    assert "4 Insufficient nvidia.com/gpu" in problem.message
    assert "(and 1 more pod(s))" in problem.message


def test_image_pull_failure_names_container_and_image() -> None:
    waiting = {"reason": "ErrImageNeverPull", "message": 'Container image "img:1" is not present'}
    problem = diagnose([pod(state={"waiting": waiting})])
    assert problem is not None and problem.reason == "ImagePullFailed"
    assert "container vllm image img:1: ErrImageNeverPull" in problem.message


def test_crash_loop_reports_the_last_termination() -> None:
    problem = diagnose([pod(**CRASHED)])
    assert problem is not None and problem.reason == "CrashLoopBackOff"
    assert "restarted 5 times; last termination: OOMKilled (exit code 137)" in problem.message


def test_a_restarted_container_that_is_coming_back_is_said_so() -> None:
    problem = diagnose(
        [
            pod(
                restartCount=1,
                state={"running": {}},
                lastState={"terminated": {"reason": "Error", "exitCode": 137}},
            )
        ]
    )
    assert problem is not None and problem.reason == "ContainerRestarted"
    assert "last termination: Error (exit code 137)" in problem.message


def test_the_most_actionable_problem_wins() -> None:
    problem = diagnose(
        [pod("a", state={"running": {}}), pod("b", **CRASHED), pod("c", conditions=UNSCHEDULABLE)]
    )
    assert problem is not None and problem.reason == "Unschedulable"


def test_starting_pods_and_healthy_pods() -> None:
    starting = diagnose([pod(state={"running": {}})])
    assert starting is not None and starting.reason == "Starting"
    assert diagnose([pod(state={"running": {}}, ready=True)]) is None
    assert diagnose([]) is None


def test_pods_being_deleted_are_not_the_reason() -> None:
    gone = pod(**CRASHED)
    gone["metadata"]["deletionTimestamp"] = "2026-12-04T05:00:00Z"
    assert diagnose([gone]) is None


def test_restarts_summary() -> None:
    assert restarts([pod(ready=True, restartCount=0)]) == ""
    assert "vllm restarted 5 time(s) in pod p-1" in restarts([pod(**CRASHED)])


def test_ready_condition_says_why_replicas_are_not_ready() -> None:
    kube, store = RecordingKube(), RecordingStore()
    env = Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())
    kube.pods["team-a"] = [pod(**CRASHED)]
    ready = conditions(reconcile(cr(), env))["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "CrashLoopBackOff"
    assert ready["message"].startswith("0/1 replicas ready; pod p-1: container vllm restarted 5 times")


def test_a_failing_pod_list_never_fails_the_reconcile() -> None:
    kube, store = RecordingKube(), RecordingStore()

    def refuse(namespace: str, selector: str) -> list[dict[str, Any]]:
        raise PermissionError("pods is forbidden")

    kube.list_pods = refuse  # type: ignore[method-assign]
    env = Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())
    ready = conditions(reconcile(cr(), env))["Ready"]
    assert ready["reason"] == "ReplicasNotReady" and ready["message"] == "0/1 replicas ready"


def test_a_crash_quotes_the_end_of_the_containers_log() -> None:
    log = "\n".join(f"INFO line {i}" for i in range(60)) + (
        "\nTraceback (most recent call last):\n  File x\nValueError: no config.json in /models/nope\n"
    )
    crashed = {**CRASHED, "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "message": log}}}
    problem = diagnose([pod(**crashed)])
    assert problem is not None
    assert problem.message.endswith("File x | ValueError: no config.json in /models/nope")
    assert "INFO line 0" not in problem.message
