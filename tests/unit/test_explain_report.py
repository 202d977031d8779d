"""`explain`'s pure parts: reading the manifest, what KEDA and the HPA do with an
answer, and the report (text and JSON) built from fake reads."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaler.config import parse_trigger
from scaler.engine import SignalRead
from scaler.explain import (
    EXIT_METADATA,
    EXIT_OK,
    EXIT_SOURCE,
    ExplainError,
    Target,
    build_report,
    exit_code,
    format_text,
    job_strategy,
    load_target,
    objects_in_directory,
    resolve_metadata,
    scaled_job_outcome,
    scaled_object_outcome,
    to_json,
)
from scaler.policy import Signals, decide, hpa_replicas
from scaler.signals.base import GpuReading, QueueReading, SourceError, SourceRejectedQuery

REPO = Path(__file__).resolve().parents[2]
SECRET = "amqp://worker:Sup3r-Secret@rabbit:5672/"

SCALED_OBJECT = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Secret
    metadata: {name: not-keda}
    ---
    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    metadata:
      name: sd-worker
      namespace: ai
    spec:
      scaleTargetRef: {name: sd-worker}
      minReplicaCount: 0
      maxReplicaCount: 8
      cooldownPeriod: 600
      triggers:
        - type: cpu
          metadata: {value: "80"}
        - type: external-push
          metadata:
            scalerAddress: prewarm.keda:6000
            source: rabbitmq
            hostFromEnv: RABBIT_URL
            queueName: jobs
            queueLength: "4"
        - type: external
          metadata:
            scalerAddress: prewarm.keda:6000
            prometheusServerAddress: http://prometheus:9090
            gpuSelector: 'namespace="ai"'
    """
)

SCALED_JOB = textwrap.dedent(
    """\
    apiVersion: keda.sh/v1alpha1
    kind: ScaledJob
    metadata: {name: render, namespace: batch}
    spec:
      jobTargetRef: {template: {}}
      maxReplicaCount: 10
      scalingStrategy:
        strategy: accurate
      triggers:
        - type: external
          metadata:
            source: rabbitmq
            host: amqp://guest:guest@rabbit:5672/
            queueName: renders
            queueLength: "1"
            mode: job
    """
)


def test_load_scaled_object_picks_the_first_external_trigger_and_resolves_from_env() -> None:
    target = load_target(SCALED_OBJECT, None, {"RABBIT_URL": SECRET})
    assert (target.kind, target.namespace, target.name) == ("ScaledObject", "ai", "sd-worker")
    assert target.trigger_index == 1 and target.trigger_type == "external-push"
    # As KEDA sends it: the key keeps its name, the value is the variable's value.
    assert target.metadata["hostFromEnv"] == SECRET
    assert target.from_env == {"hostFromEnv": "RABBIT_URL"}
    assert (target.min_replicas, target.max_replicas, target.cooldown_period) == (0, 8, 600)
    assert target.triggers_total == 3
    assert SECRET not in repr(target)


def test_load_selects_a_trigger_by_index() -> None:
    target = load_target(SCALED_OBJECT, 2, {})
    assert target.trigger_index == 2 and target.metadata["gpuSelector"] == 'namespace="ai"'


@pytest.mark.parametrize(
    ("text", "trigger", "says"),
    [
        (SCALED_OBJECT, 0, "'cpu' is not external"),
        (SCALED_OBJECT, 7, "3 trigger(s)"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", None, "no ScaledObject or ScaledJob"),
        ("kind: [unclosed", None, "not valid YAML"),
        (
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\n"
            "spec:\n  triggers:\n    - type: cpu\n      metadata: {value: '1'}\n",
            None,
            "no trigger of type external or external-push in spec.triggers (found: 'cpu')",
        ),
        (
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {}\n",
            None,
            "spec.triggers",
        ),
        (
            SCALED_OBJECT.replace("maxReplicaCount: 8", "maxReplicaCount: many"),
            2,
            "spec.maxReplicaCount",
        ),
        (SCALED_JOB.replace("strategy: accurate", "strategy: greedy"), None, "scalingStrategy"),
    ],
)
def test_manifest_problems_are_explained(text: str, trigger: int | None, says: str) -> None:
    with pytest.raises(ExplainError) as info:
        load_target(text, trigger, {"RABBIT_URL": SECRET})
    assert says in str(info.value)
    assert info.value.exit_code == EXIT_METADATA


def test_missing_environment_variable_is_named() -> None:
    with pytest.raises(ExplainError) as info:
        load_target(SCALED_OBJECT, None, {})
    message = str(info.value)
    assert "'RABBIT_URL'" in message and "'hostFromEnv'" in message and "export RABBIT_URL=" in message


def test_non_string_metadata_is_converted_and_noted() -> None:
    notes: list[str] = []
    metadata, _ = resolve_metadata({"queueLength": 5, "scaleOnDelayed": True}, {}, notes)
    assert metadata == {"queueLength": "5", "scaleOnDelayed": "true"}
    assert len(notes) == 2 and "quote it" in notes[0]


def test_scaled_job_strategy_is_read() -> None:
    target = load_target(SCALED_JOB, None, {})
    assert target.kind == "ScaledJob" and target.strategy == "accurate"
    assert target.max_replicas == 10 and target.min_replicas == 0


@pytest.mark.parametrize(
    ("value", "replicas"),
    [(0.0, 0), (0.0004, 0), (0.001, 1), (1.0, 1), (1.2, 2), (2.0000000000000004, 2), (7.9999, 8)],
)
def test_hpa_replicas_from_the_value_in_thousandths(value: float, replicas: int) -> None:
    assert hpa_replicas(value) == replicas


def so_target(**changes: object) -> Target:
    base = Target(
        kind="ScaledObject",
        name="w",
        namespace="ns",
        trigger_index=0,
        trigger_type="external",
        metadata={},
        min_replicas=0,
        max_replicas=10,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "desired", "active", "replicas", "hpa"),
    [
        ({}, 2.4, True, 3, 3),
        ({}, 0.2, True, 1, 1),
        ({}, 0.0, True, 1, 1),  # active wakes to at least 1
        ({}, 25.0, True, 10, 10),  # clamped at maxReplicaCount
        ({"min_replicas": 2}, 0.5, True, 2, 2),  # clamped at minReplicaCount
        ({}, 0.0, False, 0, 1),  # inactive: to zero after the cooldown
        ({"min_replicas": 3}, 0.0, False, 3, 3),
        ({"idle_replicas": 0, "min_replicas": 2}, 0.0, False, 0, 2),
        # inactive with minReplicaCount > 0 and no idleReplicaCount: KEDA leaves it to the HPA
        ({"min_replicas": 2}, 3.0, False, 3, 3),
        # idleReplicaCount above 0: KEDA scales to 1, the HPA raises it back to its
        # minimum (then to its own count): the workload runs the HPA's count
        ({"idle_replicas": 1, "min_replicas": 2}, 3.0, False, 3, 3),
        ({"idle_replicas": 1, "min_replicas": 3}, 0.0, False, 3, 3),
        # active with idleReplicaCount: woken to minReplicaCount, then the HPA
        ({"idle_replicas": 0, "min_replicas": 2}, 0.5, True, 2, 2),
        # maxReplicaCount unset: KEDA's default, 100
        ({"max_replicas": None}, 250.0, True, 100, 100),
        # the HPA sees the value rounded to the nearest thousandth
        ({}, 1.0007, True, 2, 2),
        ({}, 1.0004, True, 1, 1),
    ],
)
def test_scaled_object_outcome(
    changes: dict[str, object], desired: float, active: bool, replicas: int, hpa: int
) -> None:
    outcome = scaled_object_outcome(so_target(**changes), desired, active)
    assert outcome["replicas"] == replicas
    assert outcome["hpa_replicas"] == hpa
    assert outcome["steps"]


def test_idle_replica_count_above_zero_says_the_workload_does_not_rest_there() -> None:
    outcome = scaled_object_outcome(so_target(idle_replicas=1, min_replicas=2), 0.0, False)
    assert outcome["settles"] is False
    assert outcome["replicas"] == 2
    text = " ".join(outcome["steps"])
    assert "flaps between 1 and 2" in text and "only idleReplicaCount 0" in text
    at_zero = scaled_object_outcome(so_target(idle_replicas=0, min_replicas=2), 0.0, False)
    assert at_zero["settles"] is True and at_zero["replicas"] == 0
    assert "leaves a target at zero alone" in " ".join(at_zero["steps"])


def sj_target(strategy: str, **changes: object) -> Target:
    return so_target(kind="ScaledJob", strategy=strategy, **changes)


@pytest.mark.parametrize(
    ("strategy", "changes", "desired", "running", "pending", "jobs"),
    [
        # default: maxScale - running
        ("default", {}, 4.0, 0, 0, 4),
        ("default", {}, 4.0, 3, 0, 1),
        ("default", {}, 4.0, 6, 0, 0),
        # accurate: maxScale - pending, or max - running when that would overshoot
        ("accurate", {}, 4.0, 3, 1, 3),
        ("accurate", {}, 8.0, 5, 0, 5),  # 8 + 5 - 0 > 10: 10 - 5
        ("accurate", {}, 2.3, 0, 0, 3),
        # eager: min(max - running - pending, maxScale)
        ("eager", {}, 4.0, 7, 1, 2),
        ("eager", {}, 4.0, 0, 0, 4),
        # custom: maxScale - deduction - running * percentage
        ("custom", {"custom_deduction": 1.0, "custom_running_percentage": 0.5}, 6.0, 4, 0, 3),
        # minReplicaCount: running is net of it, and M = max - min
        ("default", {"min_replicas": 2}, 9.0, 2, 0, 8),
        # value above M: maxScale is capped, scaleTo is not
        ("default", {}, 30.0, 0, 0, 10),
        # nothing to do
        ("accurate", {}, 0.0, 0, 0, 0),
    ],
)
def test_scaled_job_outcome(
    strategy: str, changes: dict[str, object], desired: float, running: int, pending: int, jobs: int
) -> None:
    outcome = scaled_job_outcome(sj_target(strategy, **changes), desired, True, running, pending)
    assert outcome["jobs_created"] == jobs


def test_scaled_job_outcome_divides_by_the_target_for_max_scale_only() -> None:
    """KEDA's queue scaler at queueLength 0.5 with 3 messages: maxScale = ceil(3 / 0.5)
    = 6, but scaleTo (the value, undivided) caps the Jobs created at 3."""
    outcome = scaled_job_outcome(sj_target("default"), 3.0, True, per_job=0.5)
    assert (outcome["max_scale"], outcome["scale_to"], outcome["jobs_created"]) == (6, 3, 3)
    assert outcome["steps"][0].startswith("maxScale = min(ceil(3.000 / 0.5), ")
    # a target above 1 (queueLength 4): maxScale ceil(10 / 4) = 3 Jobs, scaleTo 10
    four = scaled_job_outcome(sj_target("default"), 10.0, True, per_job=4.0)
    assert (four["max_scale"], four["scale_to"], four["jobs_created"]) == (3, 10, 3)


def test_scaled_job_creates_nothing_while_inactive() -> None:
    outcome = scaled_job_outcome(sj_target("accurate"), 5.0, False)
    assert outcome["jobs_created"] == 0
    assert "only while the trigger is active" in outcome["steps"][-1]


# KEDA's own cases, from pkg/scaling/executor/scale_jobs_test.go (KEDA at 8b4f083):
# GetEffectiveMaxScale(maxScale, runningJobCount, pendingJobCount, maxReplicaCount,
# scaleTo) -> effective maximum (and scaleTo, for eager).
KEDA_STRATEGY_CASES = [
    # TestDefaultScalingStrategy
    ("default", {}, (3, 2, 0, 5, 1), 1, 1),
    ("default", {}, (2, 0, 0, 5, 1), 2, 1),
    # TestCustomScalingStrategy: deduction 1, percentage "0.5"
    ("custom", {"deduction": 1, "percentage": 0.5}, (3, 2, 0, 5, 1), 1, 1),
    ("custom", {"deduction": 1, "percentage": 0.5}, (10, 0, 0, 10, 1), 9, 1),
    # ... neither parameter set, or the percentage "": the default strategy
    ("custom", {}, (3, 2, 0, 5, 1), 1, 1),
    ("custom", {}, (2, 0, 0, 5, 1), 2, 1),
    ("custom", {"deduction": 1}, (2, 0, 0, 5, 1), 2, 1),
    # ... deduction 2, percentage "0"
    ("custom", {"deduction": 2, "percentage": 0.0}, (3, 2, 0, 5, 1), 1, 1),
    # ... deduction -2, percentage "0": capped at maxReplicaCount
    ("custom", {"deduction": -2, "percentage": 0.0}, (3, 2, 0, 4, 1), 4, 1),
    # TestCustomScalingStrategyNilQueueLengthDeduction: percentage "0.5", no deduction
    ("custom", {"percentage": 0.5}, (10, 2, 0, 100, 1), 9, 1),
    ("custom", {"percentage": 0.5}, (10, 0, 0, 100, 1), 10, 1),
    # TestAccurateScalingStrategy
    ("accurate", {}, (3, 2, 0, 5, 1), 3, 1),
    ("accurate", {}, (5, 2, 0, 5, 1), 3, 1),
    ("accurate", {}, (3, 4, 2, 10, 1), 1, 1),
    ("accurate", {}, (5, 4, 2, 5, 1), 1, 1),
    ("accurate", {}, (3, 3, 3, 5, 1), 0, 1),
    ("accurate", {}, (15, 15, 15, 20, 1), 0, 1),
    ("accurate", {}, (10, 10, 10, 15, 1), 0, 1),
    ("accurate", {}, (20, 15, 10, 20, 1), 5, 1),
    # TestEagerScalingStrategy: scaleTo becomes maxReplicaCount
    ("eager", {}, (4, 3, 0, 10, 1), 4, 10),
    ("eager", {}, (4, 0, 3, 10, 1), 4, 10),
    ("eager", {}, (4, 7, 0, 10, 1), 3, 10),
    ("eager", {}, (4, 1, 6, 10, 1), 3, 10),
    ("eager", {}, (15, 0, 0, 10, 1), 10, 10),
]


@pytest.mark.parametrize(("strategy", "custom", "args", "effective", "scale_to"), KEDA_STRATEGY_CASES)
def test_job_strategy_matches_kedas_own_cases(
    strategy: str,
    custom: dict[str, Any],
    args: tuple[int, int, int, int, int],
    effective: int,
    scale_to: int,
) -> None:
    max_scale, running, pending, limit, to = args
    got = job_strategy(
        strategy, max_scale=max_scale, running=running, pending=pending, limit=limit, scale_to=to, **custom
    )
    assert got[:2] == (effective, scale_to)


@pytest.mark.parametrize(
    ("min_replicas", "running", "desired", "active", "jobs"),
    [
        # TestRunningJobCountSmallerMinReplicaCount / ...IsDeductedFromMinReplicaCount /
        # ...GreaterOrEqualMinReplicaCountExecutesScalingStrategy (maxReplicaCount 100);
        # minReplicaCount > 0 makes the ScaledJob active whatever the trigger says
        (2, 0, 0.0, False, 2),
        (2, 1, 0.0, False, 1),
        (1, 1, 2.0, True, 2),
        # ... but an inactive trigger's value is not used: nothing above the minimum
        (1, 1, 2.0, False, 0),
        # below the minimum the strategy is skipped: only min - running, whatever the backlog
        (1, 0, 5.0, True, 1),
        (3, 1, 40.0, True, 2),
    ],
)
def test_running_jobs_below_min_replica_count_are_topped_up_and_nothing_more(
    min_replicas: int, running: int, desired: float, active: bool, jobs: int
) -> None:
    target = sj_target("accurate", min_replicas=min_replicas, max_replicas=100)
    outcome = scaled_job_outcome(target, desired, active, running, 0)
    assert outcome["jobs_created"] == jobs
    assert outcome["active"] is True


def test_the_rabbitmq_jobs_example_with_five_waiting_and_none_running_creates_one_job() -> None:
    text = (REPO / "manifests" / "examples" / "rabbitmq-jobs" / "scaledjob.yaml").read_text()
    target = load_target(text, None, {"RABBITMQ_URL": "amqp://u:p@rabbit:5672/"})
    cfg = parse_trigger(target.metadata)
    decision = decide(Signals(queue=QueueReading(waiting=5, in_flight=0)), cfg, now=0.0)
    first = scaled_job_outcome(target, decision.desired, decision.active, running=0, pending=0)
    assert first["jobs_created"] == 1 and first["used"] == "minReplicaCount"
    assert "skips the accurate strategy" in " ".join(first["steps"])
    # next poll: that Job is running (and pending until Ready): accurate takes over
    second = scaled_job_outcome(target, decision.desired, decision.active, running=1, pending=1)
    assert second["jobs_created"] == 4 and second["used"] == "accurate"


def test_the_rabbitmq_jobs_examples_warm_job_is_not_replaced_while_it_works() -> None:
    # What the example's minReplicaCount comment says: the busy warm Job still
    # counts towards the minimum, so no idle Job replaces it, and new prompts
    # start Jobs from cold.
    text = (REPO / "manifests" / "examples" / "rabbitmq-jobs" / "scaledjob.yaml").read_text()
    assert "counts every unfinished Job, busy or idle" in text
    target = load_target(text, None, {"RABBITMQ_URL": "amqp://u:p@rabbit:5672/"})
    cfg = parse_trigger(target.metadata)
    busy = decide(Signals(queue=QueueReading(waiting=0, in_flight=1)), cfg, now=0.0)
    assert scaled_job_outcome(target, busy.desired, busy.active, running=1)["jobs_created"] == 0
    two_more = decide(Signals(queue=QueueReading(waiting=2, in_flight=1)), cfg, now=0.0)
    assert scaled_job_outcome(target, two_more.desired, two_more.active, running=1)["jobs_created"] == 2


def test_custom_strategy_truncates_only_the_running_share() -> None:
    # maxScale 5, 3 running, percentage 0.5: 5 - 0 - int(1.5) = 4 (not int(3.5) = 3)
    target = sj_target("custom", custom_deduction=0, custom_running_percentage=0.5)
    assert scaled_job_outcome(target, 5.0, True, running=3)["jobs_created"] == 4


def test_custom_strategy_without_a_percentage_is_the_default_strategy_and_says_so() -> None:
    manifest = SCALED_JOB.replace(
        "strategy: accurate", "strategy: custom\n    customScalingQueueLengthDeduction: 1"
    )
    target = load_target(manifest, None, {})
    assert target.custom_running_percentage is None and target.custom_deduction == 1
    assert any("runs the default strategy" in note for note in target.notes)
    outcome = scaled_job_outcome(target, 6.0, True, running=2)
    assert outcome["used"] == "default" and outcome["jobs_created"] == 4  # 6 - 2, no deduction
    with_percentage = load_target(
        manifest.replace("Deduction: 1", "Deduction: 1\n    customScalingRunningJobPercentage: '0.5'"),
        None,
        {},
    )
    assert with_percentage.custom_running_percentage == 0.5 and not with_percentage.notes
    assert scaled_job_outcome(with_percentage, 6.0, True, running=2)["jobs_created"] == 4  # 6 - 1 - 1


def custom_job(percentage: str) -> str:
    return SCALED_JOB.replace(
        "strategy: accurate",
        f"strategy: custom\n    customScalingRunningJobPercentage: {json.dumps(percentage)}",
    )


@pytest.mark.parametrize("percentage", ["NaN", "nan", "Inf", "+inf", "-Infinity"])
def test_a_non_finite_custom_percentage_is_refused_naming_the_field(percentage: str) -> None:
    # Go's ParseFloat accepts these, so KEDA runs custom, but its int64(running x NaN or
    # Inf) is platform-defined: explain says so instead of crashing on int(nan).
    with pytest.raises(ExplainError, match="customScalingRunningJobPercentage: expected a finite number"):
        load_target(custom_job(percentage), None, {})


def test_a_running_share_past_int64_is_refused_naming_the_field() -> None:
    # finite, but 2 x 1e308 is inf in float64, and past int64 Go's conversion is platform-defined
    target = sj_target("custom", custom_running_percentage=1e308)
    with pytest.raises(ExplainError, match=r"customScalingRunningJobPercentage: .* does not fit"):
        scaled_job_outcome(target, 5.0, True, running=2)
    with pytest.raises(ExplainError, match="does not fit"):
        scaled_job_outcome(sj_target("custom", custom_running_percentage=1e10), 5.0, True, running=10**9)


# Python's float() reads these; Go's strconv.ParseFloat refuses them (1e400: ErrRange),
# so KEDA runs the default strategy.
@pytest.mark.parametrize("percentage", [" 0.5", "0.5\n", "\u0665", "\uff15", "1e400", "+nan"])
def test_a_percentage_go_refuses_means_the_default_strategy(percentage: str) -> None:
    target = load_target(custom_job(percentage), None, {})
    assert target.custom_running_percentage is None
    assert any("refused by Go's strconv.ParseFloat" in note for note in target.notes)
    outcome = scaled_job_outcome(target, 6.0, True, running=2)
    assert outcome["used"] == "default" and outcome["jobs_created"] == 4


# Go reads hex floats, which float() refuses: KEDA runs custom.
@pytest.mark.parametrize(("percentage", "value"), [("0x1p-1", 0.5), ("0X.8P0", 0.5), ("0x_1p-2", 0.25)])
def test_a_hex_percentage_is_read_as_go_reads_it(percentage: str, value: float) -> None:
    target = load_target(custom_job(percentage), None, {})
    assert target.custom_running_percentage == value and not target.notes
    assert scaled_job_outcome(target, 6.0, True, running=2)["used"] == "custom"


def test_max_replica_count_unset_is_100_not_100_minus_min() -> None:
    target = sj_target("default", min_replicas=5, max_replicas=None)
    outcome = scaled_job_outcome(target, 250.0, True, running=5)
    assert outcome["max_replicas"] == 100 and outcome["max_scale"] == 100
    assert outcome["jobs_created"] == 100
    # set: the room above the minimum (KEDA's MaxReplicaCount() = max - min)
    assert (
        scaled_job_outcome(sj_target("default", min_replicas=5, max_replicas=100), 250.0, True, 5)[
            "max_scale"
        ]
        == 95
    )


def test_scaled_job_reads_the_value_as_keda_does() -> None:
    # 1.0007 reaches KEDA as 1.001: scaleTo 2
    assert scaled_job_outcome(sj_target("default"), 1.0007, True)["jobs_created"] == 2
    assert scaled_job_outcome(sj_target("default"), 1.0004, True)["jobs_created"] == 1


# --- the report from fake reads ---------------------------------------------------

QUEUE_GPU = {
    "source": "rabbitmq",
    "hostFromEnv": SECRET,
    "queueName": "jobs",
    "queueLength": "4",
    "prometheusServerAddress": "http://prometheus:9090",
    "gpuSelector": 'namespace="ai"',
}


def reads_ok(waiting: float, gpus: float) -> tuple[SignalRead, ...]:
    return (
        SignalRead(
            "queue", "rabbitmq queue 'jobs' at amqp://rabbit:5672/", QueueReading(waiting, None), 0.01
        ),
        SignalRead("gpu", "prometheus at http://prometheus:9090, query 'q'", GpuReading(gpus, 1), 0.02),
    )


def test_report_of_a_working_trigger_text_and_json() -> None:
    target = so_target(
        metadata=QUEUE_GPU, from_env={"hostFromEnv": "RABBIT_URL"}, trigger_type="external-push"
    )
    cfg = parse_trigger(QUEUE_GPU)
    reads = reads_ok(waiting=2, gpus=1.7)
    decision = decide(Signals(queue=QueueReading(2, None), gpu=GpuReading(1.7, 1)), cfg, now=0.0)
    report = build_report(target, cfg, reads, decision)

    assert report["ok"] is True and exit_code(report) == EXIT_OK
    assert report["winner"] == "gpu-guard"
    assert [t["name"] for t in report["terms"]] == ["queue", "gpu-guard"]
    assert report["answer"] == {
        "metricValueFloat": 1.7,
        "metricValue": 2,
        "targetSizeFloat": 1.0,
        "active": True,
    }
    assert report["keda"]["replicas"] == 2

    text = format_text(report)
    for expected in (
        "ScaledObject ns/w",
        "hostFromEnv from $RABBIT_URL",
        "2 waiting, in flight unknown",
        "1.7 busy GPUs",
        "*gpu-guard",
        "Winner: gpu-guard",
        "metricValueFloat 1.700",
        "active yes",
        "2 replica(s)",
        "ceil(1.700 / 1) = 2",
    ):
        assert expected in text, expected
    document = json.loads(to_json(report))
    assert document["answer"]["metricValueFloat"] == 1.7
    assert SECRET not in text and SECRET not in to_json(report)


def test_report_of_a_failing_source_says_which_why_and_what_to_check() -> None:
    cfg = parse_trigger(QUEUE_GPU)
    reads = (
        reads_ok(0, 0)[0],
        SignalRead(
            "gpu",
            "prometheus at http://prometheus:9090, query 'q'",
            error=SourceError("prometheus at http://prometheus:9090, query 'q': cannot connect"),
        ),
    )
    report = build_report(so_target(metadata=QUEUE_GPU), cfg, reads, None)
    assert report["ok"] is False and exit_code(report) == EXIT_SOURCE
    assert report["error"]["status"] == "UNAVAILABLE"
    [failed] = report["error"]["sources"]
    assert failed["name"] == "gpu" and "cannot connect" in failed["why"]
    text = format_text(report)
    assert "would answer UNAVAILABLE" in text
    assert "gpu: cannot connect" in text
    assert "check: that prometheusServerAddress answers" in text
    assert "Terms" not in text


def test_rejected_query_is_a_metadata_error() -> None:
    cfg = parse_trigger(QUEUE_GPU)
    description = "prometheus at http://prometheus:9090, query 'q'"
    error = SourceRejectedQuery(f"{description}: Prometheus rejected the query: parse error")
    reads = (reads_ok(0, 0)[0], SignalRead("gpu", description, error=error))
    report = build_report(so_target(metadata=QUEUE_GPU), cfg, reads, None)
    assert report["error"]["status"] == "INVALID_ARGUMENT"
    assert exit_code(report) == EXIT_METADATA
    assert "run it in the Prometheus UI" in format_text(report)


def test_gpu_only_trigger_warns_it_cannot_wake_from_zero() -> None:
    meta = {"prometheusServerAddress": "http://p:9090", "gpuSelector": 'pod="x"'}
    cfg = parse_trigger(meta)
    reads = (SignalRead("gpu", "prometheus at http://p:9090", GpuReading(0.0, 0), 0.0),)
    decision = decide(Signals(gpu=GpuReading(0.0, 0)), cfg, now=0.0)
    report = build_report(so_target(metadata=meta), cfg, reads, decision)
    assert any("cannot wake the workload from zero" in w for w in report["warnings"])
    text = format_text(report)
    assert "Warnings" in text and "minReplicaCount >= 1" in text
    assert "0 busy GPUs (the query matched no series)" in text


@pytest.mark.parametrize(
    ("changes", "meta", "warning"),
    [
        (
            {"kind": "ScaledJob"},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"},
            "mode: job",
        ),
        (
            {},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "mode": "job"},
            "meant for a ScaledJob",
        ),
        (
            {"metric_type": "Value"},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"},
            "AverageValue",
        ),
        (
            {},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "queueLenght": "3"},
            "typo",
        ),
        (
            {"kind": "ScaledJob", "strategy": "eager"},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "mode": "job"},
            "eager duplicates Jobs",
        ),
        (
            {"kind": "ScaledJob", "strategy": "default"},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "mode": "job"},
            "wait for Jobs to finish",
        ),
        (
            {"idle_replicas": 1, "min_replicas": 3},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"},
            "KEDA supports only 0",
        ),
        (
            {"kind": "ScaledJob", "strategy": "accurate"},
            {"host": "amqp://u:p@r:5672/", "queueName": "q", "mode": "QueueLength", "value": "1"},
            "replace them with mode: job and queueLength",
        ),
        (
            {"idle_replicas": 2, "min_replicas": 2},
            {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"},
            "KEDA rejects",
        ),
    ],
)
def test_warnings(changes: dict[str, object], meta: dict[str, str], warning: str) -> None:
    cfg = parse_trigger(meta)
    reads = (SignalRead("queue", "sqs queue 'q'", QueueReading(1, 0), 0.0),)
    decision = decide(Signals(queue=QueueReading(1, 0)), cfg, now=0.0)
    report = build_report(so_target(metadata=meta, **changes), cfg, reads, decision)
    assert any(warning in w for w in report["warnings"]), report["warnings"]


def test_a_message_rate_trigger_says_what_it_measures() -> None:
    meta = {"host": "http://u:p@r:15672/", "queueName": "q", "mode": "MessageRate", "value": "5"}
    cfg = parse_trigger(meta)
    reading = QueueReading(2, 0, publish_rate=12.5)
    reads = (SignalRead("queue", "rabbitmq queue 'q'", reading, 0.0),)
    decision = decide(Signals(queue=reading), cfg, now=0.0)
    report = build_report(so_target(metadata=meta), cfg, reads, decision)
    assert report["trigger"]["measure"] == "MessageRate"
    assert report["answer"]["metricValueFloat"] == pytest.approx(2.5)
    text = format_text(report)
    assert "mode deployment (MessageRate)" in text and "publish 12.5/s / value 5" in text


def test_scaled_job_report_shows_jobs_created() -> None:
    target = load_target(SCALED_JOB, None, {})
    cfg = parse_trigger(target.metadata)
    reads = (SignalRead("queue", "rabbitmq queue 'renders'", QueueReading(5, None), 0.0),)
    decision = decide(Signals(queue=QueueReading(5, None)), cfg, now=0.0)
    report = build_report(target, cfg, reads, decision, running=2, pending=1)
    assert report["keda"]["jobs_created"] == 4  # accurate: maxScale 5 - pending 1
    text = format_text(report)
    assert "4 new Job(s) this poll (running 2, pending 1)" in text
    assert "accurate strategy" in text


def test_a_scaled_job_with_metric_type_value_creates_no_jobs() -> None:
    # KEDA's ScaledJob divides the value by the AverageValue target; with metricType
    # Value there is none, and maxScale stays 0.
    manifest = SCALED_JOB.replace("- type: external", "- type: external\n      metricType: Value")
    target = load_target(manifest, None, {})
    cfg = parse_trigger(target.metadata)
    reads = (SignalRead("queue", "rabbitmq queue 'renders'", QueueReading(5, None), 0.0),)
    decision = decide(Signals(queue=QueueReading(5, None)), cfg, now=0.0)
    report = build_report(target, cfg, reads, decision, running=2, pending=1)
    assert report["keda"]["jobs_created"] == 0 and report["keda"]["max_scale"] == 0
    text = format_text(report)
    assert "0 new Job(s) this poll" in text
    assert "maxScale = 0: with metricType Value the metric has no AverageValue target" in text
    assert any("KEDA creates no Jobs for the value; remove metricType" in w for w in report["warnings"])
    # minReplicaCount is still topped up: KEDA does that before it looks at maxScale
    topped_up = scaled_job_outcome(dataclasses.replace(target, min_replicas=2), 5.0, True, running=0)
    assert topped_up["jobs_created"] == 2


def test_a_folder_is_read_as_kubectl_apply_reads_one(tmp_path: Path) -> None:
    (tmp_path / "b-scaledjob.yml").write_text(SCALED_JOB)
    (tmp_path / "a-scaledobject.yaml").write_text(SCALED_OBJECT)  # a Secret, then the ScaledObject
    (tmp_path / "kustomization.yaml").write_text("resources: [a-scaledobject.yaml]\n")
    as_json = yaml.safe_load(SCALED_JOB)
    as_json["metadata"]["name"] = "from-json"
    (tmp_path / "c.json").write_text(json.dumps(as_json))
    (tmp_path / "notes.txt").write_text(SCALED_JOB)  # not a manifest file
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.yaml").write_text(SCALED_JOB)  # sub-folders are not read
    found = objects_in_directory(tmp_path)
    assert [(path.name, obj["kind"], obj["metadata"]["name"]) for path, obj in found] == [
        ("a-scaledobject.yaml", "ScaledObject", "sd-worker"),
        ("b-scaledjob.yml", "ScaledJob", "render"),
        ("c.json", "ScaledJob", "from-json"),
    ]
    # Each object loads as its own file would.
    assert load_target(found[0][1], None, {"RABBIT_URL": SECRET}) == load_target(
        SCALED_OBJECT, None, {"RABBIT_URL": SECRET}
    )


def test_a_folder_without_keda_objects_or_with_bad_yaml_is_explained(tmp_path: Path) -> None:
    (tmp_path / "deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(ExplainError, match=r"holds no ScaledObject or ScaledJob .*\(sub-folders are not"):
        objects_in_directory(tmp_path)
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(ExplainError, match=r"broken\.yaml: the manifest is not valid YAML"):
        objects_in_directory(tmp_path)
