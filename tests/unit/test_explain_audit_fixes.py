"""Fixes from the audit of `prewarm explain`, job mode and the what-if
(/work/notes/audit_explain.md, F2-F10): each test fails on the code before its fix."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from scaler import cli, explain
from scaler.config import parse_trigger
from scaler.engine import SignalRead
from scaler.explain import (
    EXIT_METADATA,
    ExplainError,
    build_report,
    format_text,
    keda_objects,
    load_target,
    objects_in_directory,
)
from scaler.policy import Signals, decide
from scaler.signals.base import QueueReading, SourceError
from scaler.sim.whatif import WhatIfError, load_user_object

HOST = "amqp://u:p@rabbit:5672/"
TRIGGER = f'{{scalerAddress: "p:6000", source: rabbitmq, host: "{HOST}", queueName: q, queueLength: "1"}}'
JOB_TRIGGER = TRIGGER.replace("}", ", mode: job}")


def scaled_object(spec: str = "", metadata: str = "{name: w, namespace: ai}", trigger: str = TRIGGER) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {metadata}
        spec:
          scaleTargetRef: {{name: w}}
        """
    ) + textwrap.indent(
        textwrap.dedent(spec) + f"triggers:\n  - type: external\n    metadata: {trigger}\n", "  "
    )


def scaled_job(spec: str = "", trigger: str = JOB_TRIGGER, kind: str = "external") -> str:
    return textwrap.dedent(
        """\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledJob
        metadata: {name: j, namespace: batch}
        spec:
          jobTargetRef: {template: {}}
          maxReplicaCount: 10
        """
    ) + textwrap.indent(
        textwrap.dedent(spec) + f"triggers:\n  - type: {kind}\n    metadata: {trigger}\n", "  "
    )


ACCURATE_READY = 'scalingStrategy: {strategy: accurate, pendingPodConditions: ["Ready"]}\n'


def report_of(manifest: str, waiting: float = 0, in_flight: float = 0, **kwargs: Any) -> dict[str, Any]:
    target = load_target(manifest, None, {})
    cfg = parse_trigger(target.metadata)
    reading = QueueReading(waiting, in_flight)
    reads = (SignalRead("queue", "rabbitmq queue 'q'", reading, 0.0),)
    decision = decide(Signals(queue=reading), cfg, now=0.0)
    return build_report(target, cfg, reads, decision, **kwargs)


def failing_report(manifest: str) -> dict[str, Any]:
    target = load_target(manifest, None, {})
    cfg = parse_trigger(target.metadata)
    error = SourceError("rabbitmq queue 'q': cannot connect")
    return build_report(target, cfg, (SignalRead("queue", "rabbitmq queue 'q'", error=error),), None)


# --- F2: external-push on a ScaledJob ---------------------------------------------------


def test_external_push_on_a_scaled_job_with_prewarm_jobs_says_ticks_are_evaluated() -> None:
    # KEDA opens the stream of a ScaledJob too; the scaler's ticks start no pre-warm
    # pulse (Engine polled=False, tests/unit/test_job_pulse.py), so only the stream is wasted.
    trigger = JOB_TRIGGER.replace("}", ', maxPrewarmJobs: "2"}')
    warnings = report_of(scaled_job(ACCURATE_READY, trigger, kind="external-push"))["warnings"]
    [push] = [w for w in warnings if "external-push" in w]
    assert "every tick" in push and "start no pre-warm pulse" in push and "maxPrewarmJobs 2" in push
    assert push.endswith("use type: external for a ScaledJob")


# --- F3: the what-if on a ScaledJob without mode: job ------------------------------------


def test_whatif_refuses_a_scaled_job_without_job_mode_before_any_run(tmp_path: Path) -> None:
    manifest = tmp_path / "sj.yaml"
    manifest.write_text(scaled_job(ACCURATE_READY, TRIGGER))
    with pytest.raises(WhatIfError, match="needs mode: job") as info:
        load_user_object(str(manifest), None, {})
    assert info.value.exit_code == 2


# --- F4: malformed manifests are errors naming the field or file ----------------------------


@pytest.mark.parametrize(
    ("manifest", "named"),
    [
        (scaled_object(metadata='"oops"'), "metadata must be a map"),
        (scaled_job("scalingStrategy: accurate\n"), "spec.scalingStrategy must be a map"),
        (scaled_job("scalingStrategy: {pendingPodConditions: Ready}\n"), "pendingPodConditions"),
        (scaled_job("scalingStrategy: {multipleScalersCalculation: most}\n"), "multipleScalersCalculation"),
        (scaled_object("fallback: 2\n"), "spec.fallback must be a map"),
        (scaled_object("fallback: {failureThreshold: 3}\n"), "spec.fallback.replicas"),
        (scaled_object("advanced: {scalingModifiers: q}\n"), "spec.advanced.scalingModifiers"),
    ],
)
def test_a_malformed_field_is_named(manifest: str, named: str) -> None:
    with pytest.raises(ExplainError, match=named) as info:
        load_target(manifest, None, {})
    assert info.value.exit_code == EXIT_METADATA


def test_a_folder_with_string_metadata_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(scaled_object(metadata='"oops"'))
    with pytest.raises(ExplainError, match=r"a\.yaml: the ScaledObject's metadata must be a map"):
        objects_in_directory(tmp_path)


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe" + scaled_object().encode())
    with pytest.raises(ExplainError, match=r"bad\.yaml: not UTF-8 text \(byte 0xff at offset 0\)"):
        explain.read_manifest(bad)
    with pytest.raises(ExplainError, match="not UTF-8"):
        objects_in_directory(tmp_path)
    with pytest.raises(WhatIfError, match=r"bad\.yaml: not UTF-8"):
        load_user_object(str(bad), None, {})


@pytest.mark.parametrize(
    "manifest", [scaled_object(metadata='"oops"'), scaled_job("scalingStrategy: accurate\n")]
)
def test_the_whatif_names_a_malformed_field(manifest: str, tmp_path: Path) -> None:
    path = tmp_path / "object.yaml"
    path.write_text(manifest)
    with pytest.raises(WhatIfError, match="must be a map"):
        load_user_object(str(path), None, {})


# --- F5: scalingModifiers ----------------------------------------------------------------


def test_scaling_modifiers_warn_that_the_keep_alive_no_longer_protects_busy_pods() -> None:
    modifiers = 'advanced: {scalingModifiers: {formula: "q", target: "1", activationTarget: "0"}}\n'
    trigger = TRIGGER.replace(HOST, "http://u:p@rabbit:15672/").replace(
        "}", ', excludeUnacknowledged: "true"}'
    )
    report = report_of(scaled_object(modifiers, trigger=trigger), waiting=0, in_flight=3)
    [warning] = [w for w in report["warnings"] if "scalingModifiers" in w]
    assert "ignores every trigger's IsActive" in warning and "keep-alive" in warning
    assert "scales busy pods to zero" in warning and "Remove scalingModifiers" in warning
    assert report["keda"]["scaling_modifiers"] is True
    assert report["keda"]["steps"][0].startswith("not what KEDA does here")
    assert not any("scalingModifiers" in w for w in report_of(scaled_object())["warnings"])


# --- F6: what KEDA does while the scaler answers an error -------------------------------------


def test_a_failing_scaled_job_says_scaled_jobs_have_no_fallback() -> None:
    text = format_text(failing_report(scaled_job(ACCURATE_READY)))
    assert "fallback applies" not in text
    assert "KEDA creates no Jobs for this trigger while it fails (ScaledJobs have no fallback)" in text


def test_a_failing_scaled_object_says_what_its_fallback_or_its_absence_does() -> None:
    without = failing_report(scaled_object())
    assert "fallback applies" not in format_text(without)
    assert without["error"]["keda"].startswith("no change: the object sets no fallback")
    assert "keeps the current replica count" in without["error"]["keda"]
    with_fallback = failing_report(scaled_object("fallback: {failureThreshold: 3, replicas: 2}\n"))
    assert "after 3 failure(s) in a row KEDA's fallback sets 2 replica(s)" in format_text(with_fallback)


# --- F7: warnings for settings KEDA rejects or that misbehave -----------------------------


def test_accurate_without_ready_in_pending_pod_conditions_warns() -> None:
    def pending_warnings(strategy: str) -> list[str]:
        return [w for w in report_of(scaled_job(strategy))["warnings"] if "pendingPodConditions" in w]

    assert "pendingPodConditions unset" in pending_warnings("scalingStrategy: {strategy: accurate}\n")[0]
    no_ready = pending_warnings(
        'scalingStrategy: {strategy: accurate, pendingPodConditions: ["PodScheduled"]}\n'
    )
    assert "['PodScheduled'] (no Ready)" in no_ready[0]
    assert pending_warnings(ACCURATE_READY) == []


def test_min_replica_count_above_max_is_rejected_by_keda() -> None:
    warnings = report_of(scaled_object("minReplicaCount: 5\nmaxReplicaCount: 2\n"))["warnings"]
    assert "minReplicaCount 5 is greater than maxReplicaCount 2: KEDA rejects this ScaledObject" in warnings
    assert not any("greater than" in w for w in report_of(scaled_object("minReplicaCount: 2\n"))["warnings"])


def test_idle_replica_count_with_min_unset_is_rejected_but_with_min_zero_is_not() -> None:
    unset = report_of(scaled_object("idleReplicaCount: 0\n"))["warnings"]
    assert any("idleReplicaCount 0 with minReplicaCount unset: KEDA rejects" in w for w in unset)
    written = report_of(scaled_object("idleReplicaCount: 0\nminReplicaCount: 0\n"))["warnings"]
    assert not any("idleReplicaCount" in w for w in written)  # KEDA reads a written 0 as 1


def test_a_scaled_job_with_several_triggers_says_how_keda_combines_them() -> None:
    manifest = (
        scaled_job(ACCURATE_READY.replace("}", ", multipleScalersCalculation: sum}"))
        + f"    - type: external\n      metadata: {JOB_TRIGGER}\n"
    )
    report = report_of(manifest, waiting=3)
    [warning] = [w for w in report["warnings"] if "triggers" in w]
    assert "2 triggers" in warning and "the sum of the active triggers' values and maxScale" in warning
    assert any("multipleScalersCalculation" in step for step in report["keda"]["steps"])
    default = report_of(scaled_job(ACCURATE_READY) + f"    - type: external\n      metadata: {JOB_TRIGGER}\n")
    assert any("largest value (max, the default)" in w for w in default["warnings"])


def test_metric_type_value_on_a_scaled_object_says_it_runs_away() -> None:
    manifest = scaled_object("maxReplicaCount: 10\n").replace(
        "- type: external", "- type: external\n      metricType: Value"
    )
    [warning] = [w for w in report_of(manifest, waiting=3)["warnings"] if "metricType" in w]
    assert "runs away to maxReplicaCount (10)" in warning and "remove metricType" in warning


# --- F8 and F9: the ScaledJob what-if --------------------------------------------------------


def whatif(tmp_path: Path, manifest: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "object.yaml"
    path.write_text(manifest)
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp_s,count\n" + "".join(f"{t},1\n" for t in range(0, 1800, 60)))
    code = cli.main(
        ["simulate", "--scaledobject", str(path), "--trace", str(trace), "--service", "30",
         "--cold-start", "60", "--out", str(tmp_path / "out"), "--no-plots", "--no-progress",
         "--no-advice", *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_scaled_job_whatif_shows_explains_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = whatif(tmp_path, scaled_job("scalingStrategy: {strategy: accurate}\n"), capsys=capsys)
    assert code == 0, output
    assert "- warning: scalingStrategy accurate with pendingPodConditions unset" in output


# --- F10: kind: List -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["List", "ScaledObjectList"])
def test_a_list_is_read_as_kubectl_reads_it(kind: str) -> None:
    items = textwrap.indent(scaled_object(), "    ").replace("    apiVersion", "  - apiVersion", 1)
    manifest = f"apiVersion: v1\nkind: {kind}\nitems:\n{items}"
    [found] = keda_objects(manifest)
    assert found["kind"] == "ScaledObject"
    assert load_target(manifest, None, {}).name == "w"
