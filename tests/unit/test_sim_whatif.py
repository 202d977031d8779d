"""The what-if's parts that need no servers: the HPA behavior as written, durations,
which setting to change first, and which objects wake between polls."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.explain import ExplainError
from scaler.sim.keda import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, Behavior, ScalingPolicy
from scaler.sim.whatif import (
    WhatIfError,
    behavior_from,
    candidate_changes,
    first_change,
    load_user_object,
    parse_duration,
    user_policies,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def test_behavior_as_written_and_defaults_for_what_is_left_out() -> None:
    spec = {
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {
                        "stabilizationWindowSeconds": 600,
                        "selectPolicy": "Min",
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
                    }
                }
            }
        }
    }
    behavior = behavior_from(spec)
    assert behavior.scale_up == DEFAULT_SCALE_UP
    assert behavior.scale_down.stabilization_s == 600
    assert behavior.scale_down.select == "Min"
    assert behavior.scale_down.policies == (ScalingPolicy("Pods", 1, 120.0),)
    assert behavior_from({}) is None  # none set: the HPA's legacy rules
    empty = {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": {}}}}
    assert behavior_from(empty) == Behavior()  # set, empty: Kubernetes fills in its default rules
    window_only = {
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
        }
    }
    assert behavior_from(window_only).scale_down.policies == DEFAULT_SCALE_DOWN.policies


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ({"selectPolicy": "Most"}, "selectPolicy"),
        ({"stabilizationWindowSeconds": -1}, "stabilizationWindowSeconds"),
        ({"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}, "policies[0].type"),
        ({"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}, "policies[0].value"),
        ({"policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]}, "policies[0].periodSeconds"),
    ],
)
def test_a_bad_behavior_names_the_field(rules: dict[str, object], named: str) -> None:
    spec = {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": rules}}}}
    with pytest.raises(
        ExplainError, match=f"behavior.scaleUp.{named}".replace("[", r"\[").replace("]", r"\]")
    ):
        behavior_from(spec)


def test_durations() -> None:
    assert parse_duration("7d", "--since") == 7 * 86400
    assert parse_duration("90m", "--since") == 5400
    with pytest.raises(WhatIfError, match="--since 'week'"):
        parse_duration("week", "--since")


def row(policy: str, gpu_hours: float, p95: float) -> dict[str, object]:
    return {"policy": policy, "gpu_hours": gpu_hours, "wait_p95_s": p95, "cold_start_waits": 0}


def test_missing_the_slo_picks_the_cheapest_change_that_meets_it() -> None:
    current = row("as written", 100, 200)
    tried = [row("a", 150, 50), row("b", 120, 55), row("c", 90, 300)]
    assert first_change(current, tried, 60).startswith("b:")


def test_meeting_the_slo_picks_the_biggest_saving_within_it() -> None:
    current = row("as written", 100, 30)
    tried = [row("a", 80, 70), row("b", 90, 40), row("c", 95, 20)]
    assert first_change(current, tried, 60).startswith("b:")
    assert first_change(current, [row("a", 120, 10)], 60).startswith("keep them")


@pytest.mark.parametrize(
    ("manifest", "push", "push_s"),
    [
        ("sqs-diffusion/scaledobject.yaml", False, 1.0),  # external-push: the stream wakes it at once
        ("vllm-guard/scaledobject.yaml", False, None),  # external: polled
        ("vllm-guard/scaledobject.yaml", True, 1.0),  # the same object as external-push
        ("rabbitmq-jobs/scaledjob.yaml", True, None),  # ScaledJobs ignore stream messages
    ],
)
def test_only_a_pushed_scaledobject_wakes_between_polls(
    manifest: str, push: bool, push_s: float | None, tmp_path: Path
) -> None:
    text = (EXAMPLES / manifest).read_text(encoding="utf-8")
    if push:
        assert "- type: external\n" in text
        text = text.replace("- type: external\n", "- type: external-push\n")
    path = tmp_path / "object.yaml"
    path.write_text(text, encoding="utf-8")
    environ = {"RABBITMQ_URL": "amqp://127.0.0.1", "RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:15672"}
    prewarm, twin = user_policies(load_user_object(str(path), None, environ))
    assert prewarm.push_s == push_s
    assert twin.push_s is None  # KEDA's own queue scaler cannot push


@pytest.mark.parametrize(
    ("manifest", "cooldown_tried"),
    [
        ("sqs-diffusion/scaledobject.yaml", True),  # minReplicaCount 0: cooldownPeriod delays scaling to zero
        ("vllm-guard/scaledobject.yaml", False),  # minReplicaCount 1: it never applies
    ],
)
def test_cooldown_is_tried_only_where_the_object_scales_to_zero(
    manifest: str, cooldown_tried: bool, tmp_path: Path
) -> None:
    environ = {
        "RABBITMQ_URL": "amqp://127.0.0.1",
        "RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:15672",
        "SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    }
    user = load_user_object(str(EXAMPLES / manifest), None, environ)
    labels = [label for label, _ in candidate_changes(user, 300.0)]
    assert any(label.startswith("cooldownPeriod") for label in labels) is cooldown_tried, labels


@pytest.mark.parametrize(("cold_start", "held"), [(900.0, True), (600.0, False), (700.0, False)])
def test_a_window_as_long_as_the_cold_start_is_tried_when_the_cold_start_is_longer(
    cold_start: float, held: bool
) -> None:
    """The example's window holds an idle replica 600 s; with a 900 s cold start a
    burst that comes back 10 to 15 minutes later waits for a new one. "Change first"
    simulates a window as long as the cold start too (not where it is within 20 %)."""
    environ = {"SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}
    user = load_user_object(str(EXAMPLES / "sqs-diffusion/scaledobject.yaml"), None, environ)
    changes = dict(candidate_changes(user, cold_start))
    label = f"behavior.scaleDown.stabilizationWindowSeconds 600 -> {cold_start:g} (the cold start)"
    assert (label in changes) is held, list(changes)
    # Half the window is labelled as that, even where it equals the cold start.
    halved = "behavior.scaleDown.stabilizationWindowSeconds 600 -> 300"
    assert halved in changes
    assert halved in dict(candidate_changes(user, 300.0))
    if held:
        behavior = changes[label].behavior
        assert behavior is not None and behavior.scale_down.stabilization_s == cold_start


def test_what_the_what_if_leaves_out_is_said() -> None:
    """idleReplicaCount and the object's other triggers are not simulated: the setup
    says so, and says nothing for an object without them."""
    from scaler.explain import load_target
    from scaler.sim.whatif import not_simulated

    trigger = (
        "    metadata: {scalerAddress: 'prewarm.keda:6000', source: sqs, queueLength: '4', "
        "queueURL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs'}\n"
    )
    head = (
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w, namespace: ai}\n"
        "spec:\n  scaleTargetRef: {name: w}\n"
    )
    plain = head + "  triggers:\n  - type: external\n" + trigger
    assert not_simulated(load_target(plain, None, {})) == []
    both = (
        head
        + "  idleReplicaCount: 0\n  minReplicaCount: 1\n  triggers:\n  - type: external\n"
        + trigger
        + "  - type: cpu\n    metricType: Utilization\n    metadata: {value: '60'}\n"
    )
    lines = not_simulated(load_target(both, None, {}))
    assert lines == [
        "not simulated: idleReplicaCount 0; both runs keep minReplicaCount 1 while idle, where KEDA "
        "drops to 0 after the cooldown and wakes to minReplicaCount",
        "not simulated: the object's other 1 trigger(s); only trigger 0 is, in both runs (KEDA would "
        "also act on the others)",
    ]


def test_the_hold_is_tried_off_and_twice_as_long_where_the_capacity_term_holds(tmp_path: Path) -> None:
    """With replicaThroughput the capacity term holds a burst's rate for holdSeconds (by
    default coldStartSeconds): "change first" simulates it off, twice as long, and for
    half an hour (for bursts that come back minutes apart) where that is longer still."""
    import numpy as np

    from scaler.clock import ManualClock
    from scaler.sim.policies import PrewarmTrigger
    from scaler.sim.traces import Trace
    from scaler.sim.world import World, WorldConfig

    environ = {"SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}
    user = load_user_object(str(EXAMPLES / "sqs-diffusion/scaledobject.yaml"), None, environ)
    hold = user.cfg.forecast.cold_start_seconds
    assert user.cfg.forecast.replica_throughput is not None and user.cfg.forecast.hold_seconds is None
    changes = dict(candidate_changes(user, hold))
    # Each says what it changed, not "as written" (the report lists them by description).
    assert all(
        spec.description.startswith(f"ScaledObject diffusion/sd-worker with only {label} (")
        for label, spec in changes.items()
    )
    world = World(Trace(name="t", counts=np.zeros(60), bin_s=1.0), WorldConfig())
    # holdSeconds is unset: the cold start, and half an hour for bursts that came
    # back, which any value set replaces
    was = f"unset ({hold:g}; 1800 for bursts that came back)"
    for label, seconds in (
        (f"holdSeconds {was} -> 0 (off)", 0.0),
        (f"holdSeconds {was} -> {hold * 2:g}", hold * 2),
        (f"holdSeconds {was} -> 1800 (half an hour)", 1800.0),
    ):
        (trigger,) = changes[label].make_triggers(world, ManualClock())
        assert isinstance(trigger, PrewarmTrigger) and trigger.cfg.forecast.hold_seconds == seconds
    # the two cost knobs raised together (the evaluation's cheap corner)
    ql, throughput = user.cfg.queue_length, user.cfg.forecast.replica_throughput
    assert throughput is not None
    both = (
        f"queueLength {ql:g} -> {ql * 1.5:g} and replicaThroughput {throughput:g} -> "
        f"{throughput * 1.5:g} (together)"
    )
    (trigger,) = changes[both].make_triggers(world, ManualClock())
    assert isinstance(trigger, PrewarmTrigger) and trigger.cfg.queue_length == ql * 1.5
    assert trigger.cfg.forecast.replica_throughput == pytest.approx(throughput * 1.5)
    # a ScaledObject without replicaThroughput has no hold to try
    manifest = tmp_path / "plain.yaml"
    manifest.write_text(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w, namespace: ai}\n"
        "spec:\n  scaleTargetRef: {name: w}\n  triggers:\n  - type: external\n"
        "    metadata: {scalerAddress: 'prewarm.keda:6000', source: sqs, queueLength: '4', "
        "queueURL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs'}\n",
        encoding="utf-8",
    )
    plain = load_user_object(str(manifest), None, {})
    assert not any(
        label.startswith("holdSeconds") or "replicaThroughput" in label
        for label, _ in candidate_changes(plain, hold)
    )
