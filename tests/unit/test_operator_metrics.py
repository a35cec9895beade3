"""Operator metrics under kopf's thread pool: reconciles of many policies report at once."""

from __future__ import annotations

import sys
import threading

from prometheus_client import CollectorRegistry

from hermes_operator.metrics import OperatorMetrics


def test_policies_by_condition_stay_right_when_many_threads_report_at_once() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    errors: list[BaseException] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, as a loaded operator would

    def worker(t: int) -> None:
        try:
            for i in range(300):
                name = f"p-{t}-{i}"
                metrics.observe_policy("ns", name, {"Ready": "True", "CapacityOK": "True"}, gpus=1)
                if i % 3 == 0:
                    metrics.forget_policy("ns", name)
        except BaseException as exc:  # any failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    kept = 8 * 200  # 300 per thread, every third forgotten
    ready = registry.get_sample_value("hermes_operator_policies", {"condition": "Ready", "status": "True"})
    assert ready == kept
