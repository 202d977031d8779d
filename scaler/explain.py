"""`prewarm explain`: why does my workload scale the way it does?

Reads a ScaledObject or ScaledJob manifest as the user wrote it, resolves
`...FromEnv` metadata from the local environment (KEDA resolves it from the
workload's container), reads the live sources through the same Engine as the
server, and shows each signal, each term, the winner, the answer KEDA gets, and
what KEDA and the HPA do with it.

The pieces are separate so they can be tested without sources:
manifest → `Target` (load_target), a live read → `Report` fields (build_report),
and `Report` → text or JSON (format_text / to_json).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaler.access import AccessPolicy
from scaler.clock import SystemClock
from scaler.config import ConfigError, GpuRole, Mode, TriggerConfig
from scaler.engine import Engine, ForecastView, ObjectRef, SignalRead
from scaler.policy import Decision, hpa_replicas
from scaler.signals.base import (
    ArrivalReading,
    ColdStartReading,
    GpuReading,
    QueueReading,
    SourceRejectedQuery,
)
from scaler.signals.cache import ReadingCache

EXIT_OK = 0
EXIT_SOURCE = 1  # a source could not be read
EXIT_METADATA = 2  # the manifest, its metadata or the local environment is wrong

EXTERNAL_TYPES = ("external", "external-push")
KEDA_API_GROUP = "keda.sh/"
SCALED_OBJECT = "ScaledObject"
SCALED_JOB = "ScaledJob"
DEFAULT_MAX_REPLICAS = 100
DEFAULT_COOLDOWN = 300
INT64_LIMIT = 2**63  # Go's int64 holds -2**63 .. 2**63 - 1


class ExplainError(Exception):
    """A problem found before any source was read; the message says what to fix."""

    def __init__(self, message: str, exit_code: int = EXIT_METADATA) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NoExternalTrigger(ExplainError):
    """The object has no external or external-push trigger: nothing of it is Prewarm's."""


# --- the manifest --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One external trigger of a ScaledObject or ScaledJob, metadata resolved."""

    kind: str  # ScaledObject or ScaledJob
    name: str
    namespace: str
    trigger_index: int
    trigger_type: str
    # As KEDA sends it: `xFromEnv` keys carry the resolved value. Holds secrets: never printed.
    metadata: Mapping[str, str] = field(repr=False)
    from_env: Mapping[str, str] = field(default_factory=dict)  # metadata key -> env variable name
    min_replicas: int = 0
    max_replicas: int | None = None  # None: not set (KEDA's default, 100, for both kinds)
    idle_replicas: int | None = None
    cooldown_period: int = DEFAULT_COOLDOWN
    metric_type: str = "AverageValue"
    strategy: str = "default"  # ScaledJob scalingStrategy.strategy
    custom_deduction: int = 0  # ScaledJob customScalingQueueLengthDeduction (an int32 in KEDA)
    # ScaledJob customScalingRunningJobPercentage, finite; None when unset or refused by
    # Go's strconv.ParseFloat, in which case KEDA runs the default strategy instead of
    # custom (and None for the other strategies, which never read it).
    custom_running_percentage: float | None = None
    triggers_total: int = 1
    notes: tuple[str, ...] = ()  # things noticed while reading the manifest
    # False: minReplicaCount left out of the manifest. KEDA's ScaledObject checks read an
    # unset minimum as 0 but a written 0 as the HPA's 1 (idleReplicaCount must be below it).
    min_replicas_set: bool = True
    # ScaledJob scalingStrategy.pendingPodConditions; None when not set.
    pending_pod_conditions: tuple[str, ...] | None = None
    # ScaledJob scalingStrategy.multipleScalersCalculation: how KEDA combines several triggers.
    multiple_scalers: str = "max"
    # ScaledObject spec.fallback: (failureThreshold, replicas, behavior); None when not set.
    fallback: tuple[int, int, str] | None = None
    # ScaledObject spec.advanced.scalingModifiers: (formula, target, activationTarget) as
    # written; None when no formula is set.
    scaling_modifiers: tuple[str, str, str] | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(namespace=self.namespace, name=self.name)


def load_target(manifest: str | Mapping[str, Any], trigger: int | None, environ: Mapping[str, str]) -> Target:
    """The selected trigger of a KEDA object, or of the first one in a YAML text.
    Raises ExplainError."""
    obj = _first_keda_object(manifest) if isinstance(manifest, str) else manifest
    kind = str(obj["kind"])
    meta = _object_metadata(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise ExplainError(f"the {kind} has no spec")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        raise ExplainError(f"the {kind} has no spec.triggers")
    index = _select_trigger(triggers, trigger)
    chosen = triggers[index]
    notes: list[str] = []
    metadata, from_env = resolve_metadata(chosen.get("metadata") or {}, environ, notes)
    if chosen.get("authenticationRef"):
        notes.append(
            "the trigger has an authenticationRef: KEDA does not forward TriggerAuthentication "
            "parameters to external scalers (only its own TLS ones); pass credentials with ...FromEnv"
        )
    target = Target(
        kind=kind,
        name=str(meta.get("name") or "unnamed"),
        namespace=str(meta.get("namespace") or "default"),
        trigger_index=index,
        trigger_type=str(chosen.get("type")),
        metadata=metadata,
        from_env=from_env,
        min_replicas=_int(spec, "minReplicaCount", 0),
        max_replicas=_int(spec, "maxReplicaCount", None),
        idle_replicas=_int(spec, "idleReplicaCount", None) if kind == SCALED_OBJECT else None,
        cooldown_period=_int(spec, "cooldownPeriod", DEFAULT_COOLDOWN),
        metric_type=str(chosen.get("metricType") or "AverageValue"),
        triggers_total=len(triggers),
        notes=tuple(notes),
        min_replicas_set=spec.get("minReplicaCount") is not None,
    )
    if kind == SCALED_JOB:
        strategy = spec.get("scalingStrategy")
        if strategy is None:
            strategy = {}
        if not isinstance(strategy, dict):
            raise ExplainError(
                "spec.scalingStrategy must be a map (strategy: accurate, pendingPodConditions: [Ready], "
                f"...), got {_quoted(strategy)}"
            )
        target = _with_strategy(target, strategy)
    else:
        target = dataclasses.replace(
            target, fallback=_fallback(spec), scaling_modifiers=_scaling_modifiers(spec)
        )
    return target


def _quoted(value: Any) -> str:
    """A value of the manifest in an error: at most 100 characters of it."""
    text = repr(value)
    return text if len(text) <= 100 else f"{text[:97]}... ({len(text)} characters)"


def _object_metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's metadata (name, namespace) map. Raises ExplainError."""
    meta = obj.get("metadata")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ExplainError(
            f"the {obj.get('kind')}'s metadata must be a map (name, namespace), got {_quoted(meta)}"
        )
    return meta


def _fallback(spec: Mapping[str, Any]) -> tuple[int, int, str] | None:
    raw = spec.get("fallback")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ExplainError(f"spec.fallback must be a map (failureThreshold, replicas), got {_quoted(raw)}")
    numbers = []
    for key in ("failureThreshold", "replicas"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ExplainError(f"spec.fallback.{key} must be a whole number >= 0, got {_quoted(value)}")
        numbers.append(value)
    return numbers[0], numbers[1], str(raw.get("behavior") or "static")


def _scaling_modifiers(spec: Mapping[str, Any]) -> tuple[str, str, str] | None:
    advanced = spec.get("advanced")
    if advanced is None:
        return None
    if not isinstance(advanced, dict):
        raise ExplainError(f"spec.advanced must be a map, got {_quoted(advanced)}")
    raw = advanced.get("scalingModifiers")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ExplainError(
            "spec.advanced.scalingModifiers must be a map (formula, target, activationTarget), "
            f"got {_quoted(raw)}"
        )
    formula = raw.get("formula")
    if not formula:
        return None  # KEDA applies scalingModifiers only with a formula
    return str(formula), str(raw.get("target") or ""), str(raw.get("activationTarget") or "0")


def keda_objects(text: str) -> list[dict[str, Any]]:
    """Every ScaledObject and ScaledJob in a YAML text (multi-document), in order."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ExplainError(f"the manifest is not valid YAML: {exc}") from None
    found = [
        doc
        for doc in _listed(documents)
        if str(doc.get("apiVersion", "")).startswith(KEDA_API_GROUP)
        and doc.get("kind") in (SCALED_OBJECT, SCALED_JOB)
    ]
    for doc in found:
        _object_metadata(doc)  # a map, or the error names it (before anything reads a name)
    return found


def _listed(documents: Sequence[Any], depth: int = 0) -> list[dict[str, Any]]:
    """The objects of the documents, with a `kind: List` (or any `...List`, as
    `kubectl get -o yaml` prints) replaced by its items, as kubectl reads them."""
    out: list[dict[str, Any]] = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        items = doc.get("items")
        if str(doc.get("kind", "")).endswith("List") and isinstance(items, list) and depth < 5:
            out.extend(_listed(items, depth + 1))
        else:
            out.append(doc)
    return out


def _first_keda_object(text: str) -> dict[str, Any]:
    found = keda_objects(text)
    if not found:
        raise ExplainError("the manifest holds no ScaledObject or ScaledJob (apiVersion keda.sh/v1alpha1)")
    return found[0]


# What `kubectl apply -f DIR` reads: these files in the folder itself, not its sub-folders.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def read_manifest(path: str | Path) -> str:
    """A manifest file's text. Raises ExplainError naming the file when it cannot be
    read or is not UTF-8 (as Kubernetes manifests are)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ExplainError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ExplainError(
            f"cannot read {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save the manifest as UTF-8"
        ) from None


def objects_in_directory(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, object) for every ScaledObject and ScaledJob in the folder's manifest
    files, by file name. Raises ExplainError naming the file that cannot be read."""
    files = sorted(p for p in directory.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in files:
        text = read_manifest(path)
        try:
            found.extend((path, obj) for obj in keda_objects(text))
        except ExplainError as exc:
            raise ExplainError(f"{path}: {exc}") from None
    if not found:
        raise ExplainError(
            f"{directory} holds no ScaledObject or ScaledJob (apiVersion keda.sh/v1alpha1) in its "
            f"{', '.join(MANIFEST_SUFFIXES)} files (sub-folders are not read)"
        )
    return found


def _select_trigger(triggers: list[Any], wanted: int | None) -> int:
    if wanted is None:
        for i, trig in enumerate(triggers):
            if isinstance(trig, dict) and trig.get("type") in EXTERNAL_TYPES:
                return i
        types = [trig.get("type") if isinstance(trig, dict) else trig for trig in triggers]
        raise NoExternalTrigger(
            f"no trigger of type external or external-push in spec.triggers (found: "
            f"{', '.join(map(repr, types)) or 'none'}); Prewarm answers for the triggers that name "
            "it in scalerAddress"
        )
    if not 0 <= wanted < len(triggers):
        raise ExplainError(f"--trigger {wanted}: spec.triggers has {len(triggers)} trigger(s), index 0..")
    trig = triggers[wanted]
    if not isinstance(trig, dict) or trig.get("type") not in EXTERNAL_TYPES:
        got = trig.get("type") if isinstance(trig, dict) else trig
        raise ExplainError(f"--trigger {wanted}: type {got!r} is not external or external-push")
    return wanted


def resolve_metadata(
    raw: Any, environ: Mapping[str, str], notes: list[str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Metadata as KEDA would send it: `xFromEnv: VAR` becomes `xFromEnv: <value of VAR>`.

    KEDA reads VAR from the workload container's environment; here it must be
    set in the local one. Returns (metadata, {key: variable name})."""
    if not isinstance(raw, dict):
        raise ExplainError("the trigger's metadata must be a map of strings")
    metadata: dict[str, str] = {}
    from_env: dict[str, str] = {}
    for key, value in raw.items():
        key = str(key)
        if not isinstance(value, str):
            if notes is not None:
                notes.append(f"metadata {key!r} is not a string: Kubernetes rejects it; quote it")
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if key.endswith("FromEnv"):
            variable = value.strip()
            if variable not in environ:
                raise ExplainError(
                    f"metadata key {key!r} names the environment variable {variable!r}, which is not set "
                    f"here. KEDA reads it from the workload's container; set it in this shell to the "
                    f"value the container has (export {variable}=...)"
                )
            from_env[key] = variable
            value = environ[variable]
        metadata[key] = value
    return metadata, from_env


def _int(spec: Mapping[str, Any], key: str, default: int | None) -> Any:
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExplainError(f"spec.{key} must be a whole number >= 0, got {value!r}")
    return value


def _with_strategy(target: Target, strategy: Mapping[str, Any]) -> Target:
    name = str(strategy.get("strategy") or "default")
    if name not in ("default", "accurate", "eager", "custom"):
        raise ExplainError(
            f"spec.scalingStrategy.strategy: 'default', 'accurate', 'eager' or 'custom', got {name!r}"
        )
    deduction = strategy.get("customScalingQueueLengthDeduction")
    if deduction is None:
        deduction = 0
    if isinstance(deduction, bool) or not isinstance(deduction, int):
        raise ExplainError(
            "spec.scalingStrategy.customScalingQueueLengthDeduction must be a whole number, "
            f"got {deduction!r}"
        )
    # A string in KEDA's CRD, read with Go's strconv.ParseFloat only when the custom
    # strategy is chosen; unset or refused by Go, KEDA silently runs the default
    # strategy instead of custom.
    raw = strategy.get("customScalingRunningJobPercentage")
    percentage: float | None = None
    notes = list(target.notes)
    if name == "custom":
        percentage = go_parse_float(str(raw)) if raw is not None else None
        if percentage is None:
            given = "is not set" if raw is None else f"{raw!r} is refused by Go's strconv.ParseFloat"
            notes.append(
                f"scalingStrategy custom: customScalingRunningJobPercentage {given}, so KEDA runs the "
                "default strategy (maxScale - running) instead"
            )
        elif not math.isfinite(percentage):
            # KEDA accepts NaN and Inf, but then converts running x percentage to an
            # int64, which the Go spec leaves to the platform for NaN and infinities
            # (amd64 gives the lowest int64, arm64 saturates or gives 0): the Jobs it
            # creates cannot be predicted, so explain refuses rather than guess.
            raise ExplainError(
                "spec.scalingStrategy.customScalingRunningJobPercentage: expected a finite number, "
                f"got {raw!r}. KEDA accepts it, but the Jobs it then creates depend on the CPU it runs "
                "on (Go converts running x percentage to a whole number in a platform-defined way); "
                "set a finite number such as '0.5'"
            )
    conditions = strategy.get("pendingPodConditions")
    if conditions is not None and (
        not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions)
    ):
        raise ExplainError(
            "spec.scalingStrategy.pendingPodConditions must be a list of pod condition names "
            f'(such as ["Ready"]), got {_quoted(conditions)}'
        )
    calculation = str(strategy.get("multipleScalersCalculation") or "max")
    if calculation not in MULTIPLE_SCALERS_CALCULATIONS:
        raise ExplainError(
            "spec.scalingStrategy.multipleScalersCalculation: 'max', 'min', 'avg' or 'sum', "
            f"got {_quoted(calculation)}"
        )
    return dataclasses.replace(
        target,
        strategy=name,
        custom_deduction=deduction,
        custom_running_percentage=percentage,
        notes=tuple(notes),
        pending_pod_conditions=tuple(conditions) if conditions is not None else None,
        multiple_scalers=calculation,
    )


# How KEDA combines a ScaledJob's triggers (scalingStrategy.multipleScalersCalculation),
# over the active triggers only (pkg/scaling/scaledjob/metrics.go).
MULTIPLE_SCALERS_CALCULATIONS = {
    "max": "the value and maxScale of the active trigger with the largest value (max, the default)",
    "min": "the value and maxScale of the active trigger with the smallest value (min)",
    "avg": "the average of the active triggers' values and maxScale (avg)",
    "sum": "the sum of the active triggers' values and maxScale (sum)",
}


# What Go's strconv.ParseFloat(s, 64) accepts: a decimal or hexadecimal float as in Go
# source (underscores only between digits; a hex float needs its p exponent), or
# NaN / [+-]Inf / [+-]Infinity in any case. ASCII only, no surrounding whitespace:
# Python's float() differs (it strips whitespace, reads non-ASCII digits, and refuses
# hex), so it cannot tell which strategy KEDA picks.
_DIGITS = r"[0-9](?:_?[0-9])*"
_HEX_DIGITS = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_GO_DECIMAL_FLOAT = re.compile(rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?")
# After 0x an underscore may also come before the first digit (Go's underscoreOK).
_GO_HEX_FLOAT = re.compile(
    rf"[+-]?0[xX](?:_?{_HEX_DIGITS}(?:\.(?:{_HEX_DIGITS})?)?|\.{_HEX_DIGITS})[pP][+-]?{_DIGITS}"
)
_GO_SPECIAL_FLOAT = re.compile(r"[+-]?inf(?:inity)?|nan", re.IGNORECASE)


def go_parse_float(text: str) -> float | None:
    """The number Go's strconv.ParseFloat(text, 64) returns, or None where it returns
    an error: a syntax error, or a finite literal too large for a float64 (Go's
    ErrRange, which KEDA treats as any other error). NaN and infinities are returned."""
    if _GO_SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    if _GO_DECIMAL_FLOAT.fullmatch(text):
        value = float(text)  # the same underscores are valid here
        return value if math.isfinite(value) else None
    if _GO_HEX_FLOAT.fullmatch(text):
        try:
            return float.fromhex(text.replace("_", ""))
        except OverflowError:
            return None
    return None


# --- what KEDA and the HPA do ----------------------------------------------------


def scaled_object_outcome(target: Target, desired: float, active: bool) -> dict[str, Any]:
    """Replicas for a ScaledObject from this trigger alone.

    KEDA's side follows pkg/scaling/executor/scale_scaledobjects.go (RequestScale);
    the HPA's, pkg/controller/podautoscaler/horizontal.go: a target at 0 replicas
    is left alone, and one below minReplicas is raised to minReplicas.
    """
    ceiling = hpa_replicas(desired)
    maximum = target.max_replicas if target.max_replicas is not None else DEFAULT_MAX_REPLICAS
    low = max(target.min_replicas, 1)  # the HPA's minReplicas is at least 1
    hpa = min(maximum, max(ceiling, low))
    idle = target.idle_replicas
    steps = []
    if target.scaling_modifiers is not None:
        formula, formula_target, activation = target.scaling_modifiers
        steps.append(
            f"not what KEDA does here: spec.advanced.scalingModifiers sets the formula {formula!r}, so KEDA "
            f"feeds the HPA the formula's value against its target {formula_target or '(unset)'} and decides "
            f"activity as formula > activationTarget {activation}, ignoring this trigger's answer; the "
            "figures below are this trigger's alone, as if there were no formula"
        )
    steps.append(f"HPA: ceil({desired:.3f} / 1) = {ceiling}, within [{low}, {maximum}] -> {hpa} replica(s)")
    settles = True
    if active:
        when = "at once, by the stream" if target.trigger_type == "external-push" else "at the next poll"
        steps.append(
            "KEDA: the trigger is active, so a workload at zero"
            + (" or at idleReplicaCount" if idle is not None else "")
            + f" is woken to {low} ({when}); the HPA then sets {hpa}"
        )
        replicas = hpa
    elif idle is None and target.min_replicas > 0:
        steps.append(
            f"KEDA: the trigger is inactive, but minReplicaCount is {target.min_replicas} and no "
            f"idleReplicaCount is set, so KEDA leaves the count to the HPA: {hpa}"
        )
        replicas = hpa
    elif not idle:  # idleReplicaCount 0, or minReplicaCount 0: KEDA scales to zero
        steps.append(
            f"KEDA: the trigger is inactive; once every trigger has been inactive for cooldownPeriod "
            f"({target.cooldown_period}s), KEDA scales to zero and the HPA leaves a target at zero "
            f"alone; until then, the HPA keeps {hpa}"
        )
        replicas = 0
    else:
        # KEDA scales to idleReplicaCount, but the HPA raises any count below its
        # minReplicas (minReplicaCount) back to it at its next sync, and KEDA cuts
        # it again at its next poll: it never rests at idleReplicaCount.
        settles = False
        steps.append(
            f"KEDA: the trigger is inactive; after cooldownPeriod ({target.cooldown_period}s) KEDA scales "
            f"to idleReplicaCount {idle}, but the HPA raises any count below its minimum back to "
            f"minReplicaCount {low} (then {hpa}) at its next sync, and KEDA cuts it to {idle} again at "
            f"its next poll: the workload flaps between {idle} and {hpa} and mostly runs {hpa}. "
            "KEDA supports only idleReplicaCount 0"
        )
        replicas = hpa
    if target.triggers_total > 1:
        steps.append(
            f"the object has {target.triggers_total} triggers: the HPA takes the largest count of all, "
            "and any active trigger keeps it awake"
        )
    steps.append(
        "not modelled: the HPA's 10% tolerance and its behavior (stabilization windows, rate policies)"
    )
    return {
        "kind": SCALED_OBJECT,
        "hpa_ceiling": ceiling,
        "hpa_replicas": hpa,
        "replicas": replicas,
        "settles": settles,
        "active": active,
        "min_replicas": target.min_replicas,
        "max_replicas": maximum,
        "idle_replicas": idle,
        "scaling_modifiers": target.scaling_modifiers is not None,
        "steps": steps,
    }


def job_replica_bounds(target: Target) -> tuple[int, int]:
    """KEDA's (MinReplicaCount(), MaxReplicaCount()) for a ScaledJob
    (apis/keda/v1alpha1/scaledjob_types.go): the maximum is the room above the
    minimum, max - min, or 100 when maxReplicaCount is not set (not 100 - min);
    a minimum above the maximum is taken as the maximum."""
    low, high = target.min_replicas, target.max_replicas
    if high is None:
        return low, DEFAULT_MAX_REPLICAS
    if low > high:
        return high, high
    return low, high - low


def job_strategy(
    strategy: str,
    *,
    max_scale: int,
    running: int,
    pending: int,
    limit: int,
    scale_to: int,
    deduction: int = 0,
    percentage: float | None = None,
) -> tuple[int, int, str]:
    """KEDA's GetEffectiveMaxScale for one scaling strategy: (effective maximum,
    scaleTo, the formula as text). `running` is the running Jobs above
    minReplicaCount, `limit` KEDA's MaxReplicaCount() (see job_replica_bounds).
    custom without a percentage is the default strategy, as in KEDA."""
    if strategy == "accurate":
        if max_scale + running - pending > limit:
            return limit - running, scale_to, f"maxReplicaCount - running = {limit} - {running}"
        return max_scale - pending, scale_to, f"maxScale - pending = {max_scale} - {pending}"
    if strategy == "eager":
        # eager's scaleTo is maxReplicaCount: all of the effective maximum is created.
        formula = (
            "min(maxReplicaCount - running - pending, maxScale) = "
            f"min({limit - running - pending}, {max_scale})"
        )
        return min(limit - running - pending, max_scale), limit, formula
    if strategy == "custom" and percentage is not None:
        # int() of the running share alone: Go's int64() truncates it toward zero,
        # before the subtraction.
        share = running * percentage
        if not -INT64_LIMIT <= share < INT64_LIMIT:
            # Go's int64() of a float it cannot hold is platform-defined (see _with_strategy).
            raise ExplainError(
                f"spec.scalingStrategy.customScalingRunningJobPercentage: {percentage:g} x {running} running "
                "Jobs does not fit KEDA's int64, and what Go makes of it depends on the CPU KEDA runs on; "
                "set a smaller percentage"
            )
        formula = (
            "min(maxScale - deduction - int(running x percentage), maxReplicaCount) = "
            f"min({max_scale} - {deduction} - int({running} x {percentage:g}), {limit})"
        )
        return min(max_scale - deduction - int(share), limit), scale_to, formula
    return max_scale - running, scale_to, f"maxScale - running = {max_scale} - {running}"


def has_value_target(target: Target) -> bool:
    """Whether KEDA gives the trigger's metric a Value target instead of an
    AverageValue one: for any metricType but AverageValue (the default) and
    Utilization, which KEDA refuses for external triggers (pkg/scalers/scaler.go)."""
    return target.metric_type not in ("AverageValue", "Utilization")


def scaled_job_outcome(
    target: Target, desired: float, active: bool, running: int = 0, pending: int = 0, *, per_job: float = 1.0
) -> dict[str, Any]:
    """Jobs a ScaledJob creates per poll from this trigger, as KEDA computes them.

    `desired` is the trigger's metric value and `per_job` its AverageValue target
    (1 for Prewarm's metric; queueLength for KEDA's own queue scalers).
    `running` is every unfinished Job (KEDA counts pending ones among them),
    `pending` those whose pods have not started (or not met pendingPodConditions).
    Follows pkg/scaling/scaledjob/metrics.go (maxScale, scaleTo) and
    pkg/scaling/executor/scale_jobs.go (getScalingDecision, the strategies, createJobs).
    """
    min_count, limit = job_replica_bounds(target)
    # KEDA reads the value as the HPA does (in thousandths), and uses it only
    # while the trigger is active and the value is above zero. maxScale divides
    # it by the target; scaleTo, which caps the Jobs created, is the value itself
    # (so a queueLength under 1 never creates more Jobs than messages).
    value = hpa_replicas(desired / per_job) if active else 0
    scale_to = hpa_replicas(desired) if active else 0
    per_job_text = "" if per_job == 1 else f" / {per_job:g}"
    inactive = "" if active else " (0: the trigger is inactive)"
    scale_to_text = f"scaleTo = ceil({desired:.3f}) = {scale_to}{inactive}"
    if has_value_target(target):
        # KEDA divides the value by the metric's AverageValue target, skips the
        # division when there is none, and leaves maxScale at 0 (scaledjob/metrics.go).
        max_scale = 0
        steps = [
            f"maxScale = 0: with metricType {target.metric_type} the metric has no AverageValue target "
            f"for KEDA to divide the value by, so it creates no Jobs for the value; remove metricType "
            f"(AverageValue is the default); {scale_to_text}"
        ]
    else:
        max_scale = min(value, limit)
        steps = [
            f"maxScale = min(ceil({desired:.3f}{per_job_text}), maxReplicaCount - minReplicaCount = "
            f"{limit}) = {max_scale}; {scale_to_text}"
        ]
    # With minReplicaCount > 0 the ScaledJob always counts as active.
    keda_active = active or min_count > 0
    strategy = target.strategy
    if strategy == "custom" and target.custom_running_percentage is None:
        strategy = "default"  # what KEDA does with no usable percentage
    if running < min_count:
        # Fewer unfinished Jobs than minReplicaCount: KEDA tops them up and
        # skips the scaling strategy altogether for this poll.
        effective = scale_to = min_count - running
        steps.append(
            f"running {running} < minReplicaCount {min_count}: KEDA creates minReplicaCount - running = "
            f"{effective} Job(s) and skips the {strategy} strategy this poll"
        )
        used = "minReplicaCount"
    else:
        extra = running - min_count  # the running Jobs above minReplicaCount
        effective, scale_to, formula = job_strategy(
            strategy,
            max_scale=max_scale,
            running=extra,
            pending=pending,
            limit=limit,
            scale_to=scale_to,
            deduction=target.custom_deduction,
            percentage=target.custom_running_percentage,
        )
        running_note = f" (running = {running} - minReplicaCount {min_count})" if min_count else ""
        steps.append(f"{strategy} strategy{running_note}: {formula} = {effective}")
        used = strategy
    effective = max(0, effective)
    jobs = min(scale_to, effective) if keda_active and effective > 0 else 0
    if not keda_active:
        steps.append(
            "no new Jobs: KEDA creates Jobs only while the trigger is active (or minReplicaCount > 0)"
        )
    else:
        steps.append(f"new Jobs this poll = min(scaleTo {scale_to}, {effective}) = {jobs}")
    if pending > running:
        steps.append(
            f"note: KEDA counts pending Jobs among the running ones; --running {running} should include "
            f"the {pending} pending"
        )
    if target.triggers_total > 1:
        steps.append(
            f"the ScaledJob has {target.triggers_total} triggers: KEDA uses "
            f"{MULTIPLE_SCALERS_CALCULATIONS[target.multiple_scalers]} (scalingStrategy."
            "multipleScalersCalculation), so the Jobs it creates can differ from this trigger's count"
        )
    return {
        "kind": SCALED_JOB,
        "strategy": target.strategy,
        "used": used,
        "running": running,
        "pending": pending,
        "min_replicas": min_count,
        "max_replicas": limit,
        "max_scale": max_scale,
        "scale_to": scale_to,
        "jobs_created": jobs,
        "active": keda_active,
        "steps": steps,
    }


# --- the report ------------------------------------------------------------------


def warnings_for(target: Target, cfg: TriggerConfig, *, simulated: bool = False) -> list[str]:
    """What the object as written gets wrong, after its notes. `simulated`: for the
    what-if, whose runs simulate the object as written (metricType Value included),
    where explain's numbers assume AverageValue."""
    found = list(target.notes)
    if cfg.gpu is not None and cfg.source is None:
        found.append(
            "this trigger reads only GPUs: at zero replicas nothing runs and nothing is measured, so it "
            "cannot wake the workload from zero"
            + (
                "; set minReplicaCount >= 1 or add a queue (source)"
                if target.kind == SCALED_OBJECT and target.min_replicas == 0
                else ""
            )
        )
        if cfg.gpu.role is GpuRole.GUARD:
            found.append(
                "gpuRole guard without a queue: nothing raises the replica count above the busy replicas"
            )
    if target.kind == SCALED_JOB and cfg.gpu is not None:
        found.append(
            "a ScaledJob cannot use the GPU signal: busy GPUs are Jobs already running, and would "
            "create more; remove the GPU keys (the scaler refuses them with mode: job)"
        )
    if target.kind == SCALED_JOB and cfg.mode is not Mode.JOB:
        keda_mode = target.metadata.get("mode") in ("QueueLength", "MessageRate")
        found.append(
            "a ScaledJob should set mode: job (the metric must be the backlog no Job has claimed; "
            "counting in-flight messages creates duplicate Jobs)"
            + (
                "; a trigger moved from KEDA keeps its mode and value: replace them with mode: job "
                "and queueLength"
                if keda_mode
                else ""
            )
        )
    if target.kind == SCALED_OBJECT and cfg.mode is Mode.JOB:
        found.append("mode: job is meant for a ScaledJob; a ScaledObject should use mode: deployment")
    if target.kind == SCALED_JOB and cfg.mode is Mode.JOB and target.strategy == "eager":
        found.append(
            "scalingStrategy eager duplicates Jobs with mode: job: a pending Job's message is still "
            "waiting, and eager does not subtract pending Jobs from it; use accurate"
        )
    elif target.kind == SCALED_JOB and cfg.mode is Mode.JOB and target.strategy != "accurate":
        found.append(
            f"scalingStrategy {target.strategy} subtracts running Jobs from the backlog, but with mode: job "
            "the backlog already excludes their messages, so new messages wait for Jobs to finish; "
            "for one Job per request use accurate"
        )
    if target.idle_replicas is not None and target.idle_replicas > 0:
        found.append(
            f"idleReplicaCount {target.idle_replicas}: KEDA supports only 0 (the HPA raises any count "
            "below minReplicaCount back to it, so the workload flaps instead of idling)"
        )
    if target.idle_replicas is not None and not target.min_replicas_set:
        found.append(
            f"idleReplicaCount {target.idle_replicas} with minReplicaCount unset: KEDA rejects this "
            "ScaledObject (idleReplicaCount must be less than minReplicaCount, which reads as 0 when "
            "unset); remove idleReplicaCount (minReplicaCount 0 already scales to zero), or set "
            "minReplicaCount above it"
        )
    elif target.idle_replicas is not None and target.idle_replicas >= max(target.min_replicas, 1):
        found.append(
            f"idleReplicaCount {target.idle_replicas} must be less than minReplicaCount "
            f"{target.min_replicas}: KEDA rejects this ScaledObject"
        )
    maximum = target.max_replicas if target.max_replicas is not None else DEFAULT_MAX_REPLICAS
    if target.kind == SCALED_OBJECT and target.min_replicas > maximum:
        found.append(
            f"minReplicaCount {target.min_replicas} is greater than maxReplicaCount {maximum}"
            + (" (unset: KEDA's default)" if target.max_replicas is None else "")
            + ": KEDA rejects this ScaledObject"
        )
    if target.kind == SCALED_OBJECT and target.scaling_modifiers is not None:
        formula, _, activation = target.scaling_modifiers
        found.append(
            f"spec.advanced.scalingModifiers: KEDA ignores every trigger's IsActive and decides activity "
            f"from the formula ({formula!r} > activationTarget {activation}), and the HPA scales on the "
            "formula's value. Prewarm's keep-alive (messages in flight keep the trigger active) and "
            "activationQueueLength then do nothing: while the formula is at or below activationTarget, KEDA "
            "scales busy pods to zero after cooldownPeriod. Remove scalingModifiers, or keep in-flight work "
            "in the formula's value (leave excludeUnacknowledged unset, scaleOnInFlight on) and set "
            "minReplicaCount to 1 or more"
        )
    if target.kind == SCALED_JOB and has_value_target(target):
        found.append(
            f"metricType {target.metric_type}: a ScaledJob divides the value by the metric's AverageValue "
            "target, which KEDA sets only for metricType AverageValue, so maxScale is 0 and KEDA creates "
            "no Jobs for the value; remove metricType (AverageValue is the default)"
        )
    elif target.metric_type == "Value":
        found.append(
            "metricType Value: the scaler's answer is already a replica count (for AverageValue, the "
            "default), but with Value the HPA asks for ceil(current replicas x answer): at 3 replicas and "
            f"an answer of 3 it asks for 9, then 27, and runs away to maxReplicaCount ({maximum}) without "
            "settling; remove metricType. "
            + (
                "Both runs below simulate it as written (the HPA's Value math)"
                if simulated
                else "The numbers below assume AverageValue"
            )
        )
    elif target.metric_type != "AverageValue":
        found.append(
            f"metricType {target.metric_type}: the scaler's value is meant for AverageValue (the default); "
            "the numbers below assume it"
        )
    if target.kind == SCALED_JOB and cfg.mode is Mode.JOB and target.strategy == "accurate":
        conditions = target.pending_pod_conditions
        if conditions is None or "Ready" not in conditions:
            written = "unset" if conditions is None else f"{list(conditions)} (no Ready)"
            found.append(
                f"scalingStrategy accurate with pendingPodConditions {written}: KEDA then counts a Job as "
                "pending only until its pod runs, so a Job still loading (its message still waiting) stops "
                "being subtracted and its message gets another Job at the next poll; set "
                'pendingPodConditions: ["Ready"]'
            )
    if target.kind == SCALED_JOB and target.triggers_total > 1:
        found.append(
            f"the ScaledJob has {target.triggers_total} triggers: KEDA creates Jobs from "
            f"{MULTIPLE_SCALERS_CALCULATIONS[target.multiple_scalers]} (scalingStrategy."
            "multipleScalersCalculation), not from each trigger; the Jobs shown are this trigger's alone"
        )
    if target.kind == SCALED_JOB and target.trigger_type == "external-push":
        found.append(
            "external-push on a ScaledJob: KEDA ignores the stream's messages (it creates Jobs only at its "
            "polls) but still opens the stream, which the scaler evaluates every tick for nothing"
            + (
                f" (its ticks start no pre-warm pulse: only polls do, so maxPrewarmJobs "
                f"{cfg.forecast.max_prewarm_jobs} works as with external)"
                if cfg.forecast.max_prewarm_jobs > 0
                else ""
            )
            + "; use type: external for a ScaledJob"
        )
    for key in cfg.unknown_keys:
        found.append(f"unknown metadata key {key!r} is ignored (a typo?)")
    return found


def signal_summary(read: SignalRead) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": read.name, "source": read.description}
    if read.optional:
        entry["optional"] = True  # the forecast's: a failure never fails the answer
    if read.error is not None:
        entry["error"] = str(read.error)
        return entry
    value = read.value
    if isinstance(value, QueueReading):
        entry["value"] = {
            "waiting": value.waiting,
            "in_flight": value.in_flight,
            "delayed": value.delayed,
            "publish_rate": value.publish_rate,
            "deliver_rate": value.deliver_rate,
        }
    elif isinstance(value, GpuReading):
        entry["value"] = {"busy_gpus": value.busy_gpus, "series": value.series}
    elif isinstance(value, ArrivalReading):
        entry["value"] = {"rate": value.rate}
    elif isinstance(value, ColdStartReading):
        entry["value"] = {"seconds": value.seconds}
    entry["age_s"] = read.age
    return entry


def forecast_summary(view: ForecastView | None, cfg: TriggerConfig) -> dict[str, Any] | None:
    """The forecast term's inputs: state, cold start in use, what it predicts, whether used."""
    if view is None:
        return None
    return {
        "mode": view.mode.value,
        "state": view.state.value,
        "reason": view.reason,
        "used": view.used,
        "demand_series": view.demand.value,
        "warm_start": view.warm_start,
        "cold_start_s": view.cold_start,
        "cold_start_from": "coldStartQuery" if view.cold_start_measured else "coldStartSeconds",
        "predicted_rate": view.rate,
        "upper_rate": view.upper,
        "quantile": cfg.forecast.quantile,
        # The per-minute profile of past days in the window (raises upper_rate):
        # their average, or their recent highest where that has scored better.
        "recurring_peak_rate": view.recurring,
        "recurring_from": view.recurring_from,
        "expected_arrivals": view.expected_arrivals,
        "floor": view.floor,
        "error_ratio": view.error_ratio,
    }


def build_report(
    target: Target,
    cfg: TriggerConfig,
    reads: Sequence[SignalRead],
    decision: Decision | None,
    *,
    running: int = 0,
    pending: int = 0,
    forecast: ForecastView | None = None,
) -> dict[str, Any]:
    """Everything `explain` shows, as one JSON-ready document. `decision` is
    None when a source failed (the server would answer with an error)."""
    report: dict[str, Any] = {
        "object": {"kind": target.kind, "namespace": target.namespace, "name": target.name},
        "trigger": {
            "index": target.trigger_index,
            "type": target.trigger_type,
            "metric_name": cfg.metric_name,
            "mode": cfg.mode.value,
            # KEDA's rabbitmq mode: what the queue term measures (messages or publish rate)
            "measure": cfg.rabbitmq.measure.value if cfg.rabbitmq is not None else None,
            "gpu_role": cfg.gpu.role.value if cfg.gpu is not None else None,
            "from_env": dict(target.from_env),
        },
        "signals": [signal_summary(r) for r in reads],
        "warnings": warnings_for(target, cfg),
    }
    summary = forecast_summary(forecast, cfg)
    if summary is not None:
        report["forecast"] = summary
    failed = [r for r in reads if r.error is not None and not r.optional]
    if decision is None or failed:
        rejected = any(isinstance(r.error, SourceRejectedQuery) for r in failed)
        report["ok"] = False
        report["error"] = {
            "status": "INVALID_ARGUMENT" if rejected else "UNAVAILABLE",
            "sources": [
                {"name": r.name, "source": r.description, "why": str(r.error), "check": what_to_check(r)}
                for r in failed
            ],
            "keda": keda_on_error(target),
        }
        return report
    report["ok"] = True
    report["terms"] = [
        {"name": t.name, "replicas": t.replicas, "active": t.active, "reason": t.reason}
        for t in decision.terms
    ]
    report["winner"] = decision.winner
    report["answer"] = {
        "metricValueFloat": decision.desired,
        "metricValue": decision.metric_value,
        "targetSizeFloat": 1.0,
        "active": decision.active,
    }
    if target.kind == SCALED_JOB:
        report["keda"] = scaled_job_outcome(target, decision.desired, decision.active, running, pending)
    else:
        report["keda"] = scaled_object_outcome(target, decision.desired, decision.active)
    return report


def keda_on_error(target: Target) -> str:
    """What KEDA does while the scaler answers this trigger with an error."""
    if target.kind == SCALED_JOB:
        return (
            "KEDA creates no Jobs for this trigger while it fails (ScaledJobs have no fallback); "
            "running Jobs are left alone"
        )
    if target.fallback is None:
        return (
            "no change: the object sets no fallback, so the HPA keeps the current replica count and KEDA "
            "does not scale it to zero until the scaler answers again (spec.fallback would set a count)"
        )
    threshold, replicas, behavior = target.fallback
    how = (
        f"sets {replicas} replica(s)"
        if behavior == "static"
        else f"applies (behavior {behavior}, replicas {replicas})"
    )
    return (
        f"after {threshold} failure(s) in a row KEDA's fallback {how}; until then the HPA keeps the current "
        "replica count"
    )


def what_to_check(read: SignalRead) -> str:
    if isinstance(read.error, SourceRejectedQuery):
        if read.name in ("arrival", "cold start"):
            key = "arrivalQuery" if read.name == "arrival" else "coldStartQuery"
            return f"the query ({key}): run it in the Prometheus UI"
        return "the query (gpuQuery or gpuSelector): run it in the Prometheus UI"
    if read.description.startswith("prometheus"):
        return (
            "that prometheusServerAddress answers from here (curl <address>/-/ready), the credentials, "
            "and that the query returns one number in the Prometheus UI"
        )
    if read.description.startswith("rabbitmq"):
        return "the host URL (address, port, credentials, vhost) and that the queue exists"
    if read.description.startswith("sqs"):
        return "queueURL, the region, the AWS credentials, and that the endpoint is reachable from here"
    return "the source's address and credentials"


def exit_code(report: Mapping[str, Any]) -> int:
    if report.get("ok"):
        return EXIT_OK
    return EXIT_METADATA if report["error"]["status"] == "INVALID_ARGUMENT" else EXIT_SOURCE


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)


def format_text(report: Mapping[str, Any]) -> str:
    obj, trig = report["object"], report["trigger"]
    lines = [
        f"{obj['kind']} {obj['namespace']}/{obj['name']}, trigger {trig['index']} ({trig['type']}), "
        f"metric {trig['metric_name']!r}, mode {trig['mode']}"
        + (f" ({trig['measure']})" if trig.get("measure") == "MessageRate" else "")
        + (f", gpuRole {trig['gpu_role']}" if trig["gpu_role"] else ""),
    ]
    for key, variable in trig["from_env"].items():
        lines.append(f"  {key} from ${variable}")
    lines.append("")
    lines.append("Signals")
    for sig in report["signals"]:
        lines.append(f"  {sig['name']}: {sig['source']}")
        if "error" in sig:
            lines.append(f"    FAILED: {_without_prefix(sig['error'], sig['source'])}")
        else:
            lines.append(f"    {_value_text(sig['value'])}  (read {sig['age_s']:.2f}s ago)")
    if not report["ok"]:
        error = report["error"]
        lines.append("")
        lines.append(f"The scaler would answer {error['status']}, not a number:")
        for src in error["sources"]:
            lines.append(f"  {src['name']}: {_without_prefix(src['why'], src['source'])}")
            lines.append(f"    check: {src['check']}")
        lines.append(f"What KEDA would do: {error['keda']}")
        _append_warnings(lines, report)
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append("Terms (replicas each asks for)")
    width = max(len(t["name"]) for t in report["terms"])
    for term in report["terms"]:
        mark = "*" if term["name"] == report["winner"] else " "
        state = "active" if term["active"] else "inactive"
        lines.append(f" {mark}{term['name']:<{width}}  {term['replicas']:8.3f}  {state:<8}  {term['reason']}")
    answer = report["answer"]
    lines.append(f"Winner: {report['winner']}")
    _append_forecast(lines, report)
    lines.append("")
    lines.append(
        f"Answer to KEDA: metricValueFloat {answer['metricValueFloat']:.3f} (metricValue "
        f"{answer['metricValue']}, target 1), active {'yes' if answer['active'] else 'no'}"
    )
    lines.append("")
    keda = report["keda"]
    if keda["kind"] == SCALED_JOB:
        lines.append(
            f"What KEDA would do: {keda['jobs_created']} new Job(s) this poll "
            f"(running {keda['running']}, pending {keda['pending']})"
        )
    else:
        lines.append(f"What KEDA and the HPA would do: {keda['replicas']} replica(s)")
    lines.extend(f"  {step}" for step in keda["steps"])
    _append_warnings(lines, report)
    return "\n".join(lines) + "\n"


def _without_prefix(message: str, source: str) -> str:
    """Source errors start with the source's description, shown just above."""
    return message[len(source) + 2 :] if message.startswith(source + ": ") else message


def _append_forecast(lines: list[str], report: Mapping[str, Any]) -> None:
    fc = report.get("forecast")
    if fc is None:
        return
    if fc["used"]:
        use = "used in the answer"
    else:
        use = "advisory: shown, never used" if fc["mode"] == "advisory" else "not used"
    lines.append("")
    lines.append(f"Forecast ({fc['mode']}): {fc['reason']}; {use}")
    warm = f"; warm start {fc['warm_start']}" if fc["warm_start"] else ""
    lines.append(f"  demand series: {fc['demand_series']}{warm}")
    lines.append(f"  cold start in use: {fc['cold_start_s']:g}s (from {fc['cold_start_from']})")
    lines.append(
        f"  predicted: {fc['predicted_rate']:.3g}/s over the cold start, peak upper {fc['upper_rate']:.3g}/s "
        f"(q{fc['quantile']:g}), {fc['expected_arrivals']:.3g} arrivals expected; floor {fc['floor']:.3g}"
    )
    if fc["recurring_peak_rate"] > 0:
        lines.append(
            f"  recurring peak: {fc['recurring_peak_rate']:.3g}/s in the window "
            f"({fc['recurring_from']} of past days at each minute)"
        )


def _value_text(value: Mapping[str, Any]) -> str:
    if "rate" in value:
        return f"{value['rate']:.3g} requests/s"
    if "seconds" in value:
        return f"cold start {value['seconds']:.3g}s"
    if "busy_gpus" in value:
        if value["series"] == 0:
            return "0 busy GPUs (the query matched no series)"
        return f"{value['busy_gpus']:.3g} busy GPUs"
    parts = [f"{value['waiting']:g} waiting"]
    parts.append(
        "in flight unknown (AMQP cannot see it)"
        if value["in_flight"] is None
        else f"{value['in_flight']:g} in flight"
    )
    if value["delayed"]:
        parts.append(f"{value['delayed']:g} delayed")
    if value["publish_rate"] is not None:
        parts.append(f"publish {value['publish_rate']:g}/s")
    if value["deliver_rate"] is not None:
        parts.append(f"deliver {value['deliver_rate']:g}/s")
    return ", ".join(parts)


def _append_warnings(lines: list[str], report: Mapping[str, Any]) -> None:
    if report["warnings"]:
        lines.append("")
        lines.append("Warnings")
        lines.extend(f"  - {w}" for w in report["warnings"])


# --- running it -------------------------------------------------------------------


async def evaluate(
    target: Target, *, timeout: float, access: AccessPolicy | None = None
) -> tuple[TriggerConfig, tuple[SignalRead, ...], Decision | None, ForecastView | None]:
    """Parse, check against the operator's limits and read live, as the server would
    (fresh cache, system clock; the forecast warm-starts from arrivalQuery's history,
    as a restarted server does)."""
    clock = SystemClock()
    cache = ReadingCache(clock, ttl=0.0, timeout=timeout)
    try:
        engine = Engine(cache, clock, access=access)
        try:
            cfg = engine.config(target.ref, target.metadata)
        except ConfigError as exc:
            raise ExplainError(f"bad trigger metadata: {exc}") from None
        reads = await engine.read_signals(cfg)
        if any(r.error is not None and not r.optional for r in reads):
            return cfg, reads, None, None
        evaluation = engine.decide(target.ref, cfg, reads)
        return cfg, reads, evaluation.decision, evaluation.forecast
    finally:
        cache.close()


def run(
    manifest: str | Mapping[str, Any],
    *,
    trigger: int | None,
    environ: Mapping[str, str],
    timeout: float,
    running: int = 0,
    pending: int = 0,
    access: AccessPolicy | None = None,
) -> dict[str, Any]:
    """The whole explanation of one KEDA object (or of the first in a YAML text) as a
    report. Raises ExplainError."""
    target = load_target(manifest, trigger, environ)
    cfg, reads, decision, forecast = asyncio.run(evaluate(target, timeout=timeout, access=access))
    return build_report(target, cfg, reads, decision, running=running, pending=pending, forecast=forecast)
