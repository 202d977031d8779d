"""Overlays a user writes on top of the shipped manifests: the one docs/deploy.md
shows for putting the Grafana dashboard next to Grafana moves that ConfigMap alone,
and a scaler moved to another namespace with kustomize's `namespace:` is still
scraped by its ServiceMonitor. Rendered with `kubectl kustomize`, like
test_manifests.py."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import kubernetes_validate
import yaml
from test_manifests import KUBERNETES_VERSIONS, MANIFESTS, REPO, Obj, find, render

DEPLOY_MD = REPO / "docs" / "deploy.md"
WITH_MONITORING = MANIFESTS / "examples" / "with-servicemonitor"
DASHBOARD = ("ConfigMap", "prewarm-dashboard")


def _key(obj: Obj) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _overlay(directory: Path, kustomization: Obj, resource: Path = WITH_MONITORING) -> tuple[Obj, ...]:
    """Render `kustomization` from `directory`, its resources replaced by `resource`."""
    kustomization = dict(kustomization, resources=[os.path.relpath(resource, directory)])
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return render(directory)


def _documented_dashboard_overlay() -> Obj:
    """The Kustomization in docs/deploy.md's "Dashboard" section."""
    text = DEPLOY_MD.read_text(encoding="utf-8")
    section = text.split("### Dashboard", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (block,) = [b for b in blocks if "kind: Kustomization" in b]
    doc = yaml.safe_load(block)
    assert isinstance(doc, dict)
    return doc


def _scraped_namespaces(monitor: Obj) -> set[str] | None:
    """The namespaces a ServiceMonitor discovers Services in, as the Prometheus
    Operator reads its namespaceSelector (None: every namespace)."""
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return None
    return set(selector.get("matchNames") or [monitor["metadata"]["namespace"]])


def _assert_scrapes_the_scaler(objs: tuple[Obj, ...], namespace: str) -> None:
    monitor = find(objs, "ServiceMonitor", "prewarm", namespace)
    service = find(objs, "Service", "prewarm", namespace)
    scraped = _scraped_namespaces(monitor)
    assert scraped is None or namespace in scraped, f"the ServiceMonitor looks in {scraped}, not {namespace}"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


# --- F1: the dashboard in Grafana's namespace -----------------------------------------


def test_the_documented_dashboard_overlay_moves_only_the_configmap(tmp_path: Path) -> None:
    documented = _documented_dashboard_overlay()
    assert "namespace" not in documented, "an overlay-level namespace: moves every object"
    (resource,) = documented["resources"]
    assert resource.endswith("manifests/examples/with-servicemonitor"), resource
    moved = _overlay(tmp_path, documented)
    shipped = render(WITH_MONITORING)

    dashboard = find(moved, *DASHBOARD, "monitoring")
    original = find(shipped, *DASHBOARD, "prewarm")
    assert dashboard["data"] == original["data"]
    assert dashboard["metadata"]["labels"] == original["metadata"]["labels"]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(copy.deepcopy(dashboard), version, strict=True)

    # Everything else is exactly as shipped: the Namespace object, the scaler, its monitoring.
    def others(objs: tuple[Obj, ...]) -> list[Obj]:
        return sorted((o for o in objs if (o["kind"], o["metadata"]["name"]) != DASHBOARD), key=repr)

    assert others(moved) == others(shipped)
    assert [o["metadata"]["name"] for o in moved if o["kind"] == "Namespace"] == ["prewarm"]
    for kind in ("Deployment", "Service", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"):
        find(moved, kind, "prewarm", "prewarm")
    _assert_scrapes_the_scaler(moved, "prewarm")


def test_an_overlay_namespace_would_move_and_relabel_everything(tmp_path: Path) -> None:
    """Why the docs warn against `namespace: monitoring` for the dashboard: kustomize
    moves every object and renames the Namespace object, Pod Security labels and all."""
    objs = _overlay(
        tmp_path,
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "monitoring"},
    )
    (namespace,) = [o for o in objs if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == "monitoring"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"} == {"monitoring"}


# --- F2: the ServiceMonitor follows the scaler -----------------------------------------


def test_the_shipped_servicemonitor_scrapes_its_own_namespace() -> None:
    monitor = find(render(WITH_MONITORING), "ServiceMonitor", "prewarm", "prewarm")
    assert "namespaceSelector" not in monitor["spec"], "kustomize's namespace: would not rewrite it"
    _assert_scrapes_the_scaler(render(WITH_MONITORING), "prewarm")


def test_a_relocated_scaler_is_still_scraped(tmp_path: Path) -> None:
    objs = _overlay(
        tmp_path,
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "platform"},
    )
    assert {_key(o)[1] for o in objs if o["kind"] != "Namespace"} == {"platform"}
    _assert_scrapes_the_scaler(objs, "platform")


# --- the examples' settings do what their comments say ---------------------------------


def test_no_example_sets_a_cooldown_that_never_applies() -> None:
    """KEDA's cooldownPeriod only delays scaling to zero (or to idleReplicaCount): on
    a ScaledObject with a floor above zero and no idle count it does nothing, and a
    reader would take it for what slows scale-down (the HPA's window does)."""
    for directory in sorted((MANIFESTS / "examples").iterdir()):
        for obj in render(directory) if (directory / "kustomization.yaml").exists() else ():
            spec = obj.get("spec", {})
            if obj["kind"] == "ScaledObject" and "cooldownPeriod" in spec:
                floor = spec.get("minReplicaCount", 0)
                assert floor == 0 or "idleReplicaCount" in spec, f"{directory.name}/{obj['metadata']['name']}"
