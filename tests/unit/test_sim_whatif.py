"""The what-if's pure parts: the HPA behavior as written, durations, and which
setting to change first."""

from __future__ import annotations

import pytest

from scaler.explain import ExplainError
from scaler.sim.keda import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, Behavior, ScalingPolicy
from scaler.sim.whatif import WhatIfError, behavior_from, first_change, parse_duration


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
    assert behavior_from({}) == Behavior()
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
