"""KEDA and HPA emulation, checked against cases computed by hand from the
Kubernetes HPA algorithm and KEDA's activation/cooldown rules."""

from __future__ import annotations

from scaler.sim.keda import (
    Behavior,
    Hpa,
    ScaledObjectLoop,
    ScalingPolicy,
    ScalingRules,
    metric_replicas,
    value_metric_replicas,
)


def test_hpa_tolerance_keeps_the_count_within_ten_percent() -> None:
    # 4 replicas, target 1: 4.3 is 7.5 % above -> unchanged; 4.5 is 12.5 % above -> ceil(4.5) = 5.
    assert metric_replicas(4.3, 1.0, 4) == 4
    assert metric_replicas(3.7, 1.0, 4) == 4  # 7.5 % below
    assert metric_replicas(4.5, 1.0, 4) == 5
    assert metric_replicas(3.5, 1.0, 4) == 4  # 12.5 % below: ceil(3.5) = 4 anyway
    assert metric_replicas(3.0, 1.0, 4) == 3
    # AverageValue with target 5 messages per replica: 23 messages on 2 replicas -> ceil(4.6) = 5.
    assert metric_replicas(23, 5, 2) == 5


def test_a_value_target_scales_the_ready_pods_by_the_ratio() -> None:
    """metricType Value: ceil(value / target x Ready pods), unchanged while the ratio
    itself is within 10 % of 1 (not value / (target x current) as for AverageValue)."""
    # 3 replicas, all Ready, answer 3 (a replica count), target 1: ratio 3 -> 9.
    assert value_metric_replicas(3.0, 1.0, current=3, ready=3) == 9
    # Two of the three still starting: only the Ready one is scaled, ceil(3 x 1) = 3.
    assert value_metric_replicas(3.0, 1.0, current=3, ready=1) == 3
    # None Ready yet: it asks for 0 (the normalisation then keeps minReplicas or the window's highest).
    assert value_metric_replicas(3.0, 1.0, current=3, ready=0) == 0
    # Ratio 1.05: within the tolerance, whatever the fleet; AverageValue would ask ceil(1.05) = 2 of 5.
    assert value_metric_replicas(1.05, 1.0, current=5, ready=5) == 5
    assert metric_replicas(1.05, 1.0, 5) == 2
    # 10 messages against a target of 4 on 2 Ready pods: ceil(2.5 x 2) = 5.
    assert value_metric_replicas(10, 4, current=2, ready=2) == 5
    # At 0 replicas, ceil(value / target).
    assert value_metric_replicas(10, 4, current=0, ready=0) == 3


def test_an_hpa_on_a_value_target_runs_a_replica_count_away_to_its_maximum() -> None:
    """An answer that is already a replica count, read as a Value target: each sync
    multiplies the fleet (explain's warning), up to maxReplicas; as AverageValue the
    same answer holds the count."""
    value = Hpa(min_replicas=1, max_replicas=20, behavior=Behavior(), metric_type="Value")
    average = Hpa(min_replicas=1, max_replicas=20, behavior=Behavior())
    counts = []
    current = 3
    for t in range(0, 60, 15):
        current = value.sync(t, current, [(3.0, 1.0)], ready=current)
        counts.append(current)
    # Each asks 3 x the fleet; the default rate limit allows max(+100 %, +4 pods) a sync:
    # 9 -> 7, 21 -> 14, 42 -> 20 (maxReplicas), and there it stays.
    assert counts == [7, 14, 20, 20]
    assert average.sync(0, 3, [(3.0, 1.0)], ready=3) == 3


def test_hpa_scale_up_is_limited_by_the_default_policies() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100, behavior=Behavior())  # a behavior set, rules defaulted
    # From 2, default policies allow max(2 * 200 %, 2 + 4) = 6 per 15 s.
    assert hpa.sync(0, 2, [(20.0, 1.0)]) == 6
    # 15 s later the period has passed: from 6, max(12, 10) = 12.
    assert hpa.sync(15, 6, [(20.0, 1.0)]) == 12
    # Within the same period a further sync adds nothing beyond the limit.
    assert hpa.sync(20, 12, [(20.0, 1.0)]) == 12


def test_hpa_scale_down_waits_for_the_stabilization_window() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100, behavior=Behavior())
    assert hpa.sync(0, 10, [(10.0, 1.0)]) == 10
    for t in range(15, 300, 15):
        # The recommendation of 10 at t = 0 is still inside the 300 s window.
        assert hpa.sync(t, 10, [(2.0, 1.0)]) == 10, t
    # At t = 300 it has left the window (strictly after now - 300 counts): down to 2.
    assert hpa.sync(300, 10, [(2.0, 1.0)]) == 2


def test_hpa_scale_down_pods_policy_removes_one_pod_per_period() -> None:
    behavior = Behavior(scale_down=ScalingRules(0.0, (ScalingPolicy("Pods", 1, 60.0),)))
    hpa = Hpa(min_replicas=1, max_replicas=100, behavior=behavior)
    assert hpa.sync(0, 10, [(2.0, 1.0)]) == 9
    assert hpa.sync(15, 9, [(2.0, 1.0)]) == 9  # one pod already removed in this 60 s period
    assert hpa.sync(45, 9, [(2.0, 1.0)]) == 9
    assert hpa.sync(75, 9, [(2.0, 1.0)]) == 8


def test_hpa_clamps_to_min_and_max_and_leaves_zero_alone() -> None:
    hpa = Hpa(min_replicas=2, max_replicas=100, behavior=Behavior())
    assert hpa.sync(0, 60, [(500.0, 1.0)]) == 100  # up limit 120, max 100
    assert Hpa(min_replicas=2, max_replicas=100).sync(0, 60, [(500.0, 1.0)]) == 100  # legacy: the same
    hpa = Hpa(min_replicas=2, max_replicas=100, behavior=Behavior(scale_down=ScalingRules(0.0, ())))
    assert hpa.sync(0, 1, [(0.0, 1.0)]) == 2  # below minReplicas: raised to it
    assert Hpa(min_replicas=1, max_replicas=10).sync(0, 0, [(50.0, 1.0)]) == 0  # KEDA owns 0 -> 1


# With no behavior (KEDA creates the HPA without one unless the ScaledObject sets
# advanced.horizontalPodAutoscalerConfig.behavior), Kubernetes normalises with its
# legacy rules (normalizeDesiredReplicas): the highest recommendation of the last
# 300 s, this one included, then at most max(2 x current, 4).


def test_hpa_without_a_behavior_scales_up_by_at_most_double_or_to_four() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100)
    assert hpa.sync(0, 1, [(20.0, 1.0)]) == 4  # max(2, 4); the default rules would allow 5
    assert hpa.sync(15, 4, [(20.0, 1.0)]) == 8
    assert hpa.sync(30, 8, [(20.0, 1.0)]) == 16
    assert hpa.sync(45, 16, [(20.0, 1.0)]) == 20


def test_hpa_without_a_behavior_keeps_climbing_to_an_ask_of_the_last_five_minutes() -> None:
    # One ask of 40, then 3: the 40 stays the recommendation for 300 s and the count
    # keeps doubling towards it (with a behavior, the count would stay at 5).
    hpa = Hpa(min_replicas=1, max_replicas=100)
    counts, current = [], 1
    for i, ask in enumerate([40.0, 3.0, 3.0, 3.0, 3.0, 3.0]):
        current = hpa.sync(15 * i, current, [(ask, 1.0)])
        counts.append(current)
    assert counts == [4, 8, 16, 32, 40, 40]
    with_rules = Hpa(min_replicas=1, max_replicas=100, behavior=Behavior())
    counts, current = [], 1
    for i, ask in enumerate([40.0, 3.0, 3.0, 3.0, 3.0, 3.0]):
        current = with_rules.sync(15 * i, current, [(ask, 1.0)])
        counts.append(current)
    assert counts == [5, 5, 5, 5, 5, 5]


def test_hpa_without_a_behavior_holds_for_the_window_but_not_its_edge() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100)
    assert hpa.sync(0, 10, [(10.0, 1.0)]) == 10
    for t in range(15, 300, 15):
        # The 10 of t = 0 counts while it is younger than 300 s.
        assert hpa.sync(t, 10, [(2.0, 1.0)]) == 10, t
    # 20 syncs later: a real controller's syncs drift a little past 15 s each, so that
    # recommendation is just older than the window there, and dropped; down in one step.
    assert hpa.sync(300, 10, [(2.0, 1.0)]) == 2
    assert Hpa(min_replicas=3, max_replicas=100).sync(0, 5, [(0.0, 1.0)]) == 3  # within min


def test_hpa_takes_the_largest_metric() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100)
    assert hpa.sync(0, 4, [(8.0, 4.0), (30.0, 5.0)]) == 6  # ceil(2), ceil(6)


def test_keda_wakes_from_zero_and_cools_down_to_zero() -> None:
    loop = ScaledObjectLoop(min_replicas=0, cooldown_s=300)
    assert loop.poll(0, 0, any_active=True) == 1
    assert loop.poll(30, 3, any_active=False) == 3
    assert loop.poll(270, 3, any_active=False) == 3  # 270 s since the last active poll
    assert loop.poll(300, 3, any_active=False) == 0  # cooldownPeriod reached


def test_keda_cooldown_restarts_on_activity_and_respects_min() -> None:
    loop = ScaledObjectLoop(min_replicas=0, cooldown_s=300)
    loop.poll(0, 0, any_active=True)
    loop.poll(200, 2, any_active=True)
    assert loop.poll(450, 2, any_active=False) == 2
    assert loop.poll(500, 2, any_active=False) == 0
    held = ScaledObjectLoop(min_replicas=1, cooldown_s=300)
    assert held.poll(0, 0, any_active=True) == 1
    assert held.poll(10_000, 3, any_active=False) == 3  # min 1: KEDA leaves it to the HPA
