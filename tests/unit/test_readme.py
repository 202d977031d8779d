"""The README's examples are what newcomers copy: they must be objects a cluster
accepts (KEDA's CRD schemas, strict) and metadata the scaler parses with no
unknown key. Its commands must be the Makefile targets that exist, and its
reference (server flags, metrics) must name exactly what the code has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from test_manifests import PLAUSIBLE_FROM_ENV, keda_validators

from scaler.cli import build_parser
from scaler.config import parse_trigger
from scaler.server import ScalerServer, Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _keda_examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DOCS:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and doc.get("kind") in ("ScaledObject", "ScaledJob"):
                    found.append((f"{path.name}#{i}-{doc['kind']}", doc))
    return found


EXAMPLES = _keda_examples()


def test_the_readme_shows_a_scaledobject_and_a_scaledjob() -> None:
    kinds = {doc["kind"] for name, doc in EXAMPLES if name.startswith("README.md")}
    assert kinds == {"ScaledObject", "ScaledJob"}


@pytest.mark.parametrize(("name", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_passes_kedas_schema_and_the_scaler_parser(name: str, doc: dict[str, Any]) -> None:
    validator = keda_validators()[f"{doc['apiVersion']}/{doc['kind']}"]
    errors = [e.message for e in validator.iter_errors(doc)]
    assert errors == [], f"{name}: {errors}"
    external = [t for t in doc["spec"]["triggers"] if t["type"] in ("external", "external-push")]
    assert external, f"{name}: no external trigger"
    for trigger in external:
        metadata = {
            k: PLAUSIBLE_FROM_ENV[k.removesuffix("FromEnv")] if k.endswith("FromEnv") else v
            for k, v in trigger["metadata"].items()
        }
        cfg = parse_trigger(metadata)
        assert cfg.unknown_keys == (), f"{name}: keys the scaler does not know: {cfg.unknown_keys}"
        assert (cfg.mode.value == "job") == (doc["kind"] == "ScaledJob")


def test_readme_commands_are_makefile_targets() -> None:
    readme = (REPO / "README.md").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))
    used = set(re.findall(r"^make ([a-z-]+)", readme, re.M))
    assert {"run", "test"} <= used
    assert used <= targets, f"README names make targets that do not exist: {used - targets}"


# --- the reference sections cannot drift from the code ---------------------------


def _serve_flags() -> set[str]:
    """Every flag `prewarm serve --help` lists, from the real parser."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    serve = sub.choices["serve"]
    return {f for a in serve._actions if a.dest != "help" for f in a.option_strings if f.startswith("--")}


def _exported_metric_families() -> set[str]:
    """Every metric family a server serves on /metrics, from the server's own registry."""
    server = ScalerServer(Settings())
    try:
        text = generate_latest(server.metrics.registry).decode()
    finally:
        server.cache.close()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_every_serve_flag_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    flags = _serve_flags()
    assert "--port" in flags and "--read-threads" in flags  # the parser was read
    missing = sorted(f for f in flags if f"`{f}`" not in readme)
    assert not missing, f"README.md's server flags table lacks {missing}"
    # ...and the table names no flag that is gone.
    listed = set(re.findall(r"`(--[a-z-]+)`", "\n".join(re.findall(r"^\| `--.*$", readme, re.M))))
    assert listed <= flags, f"README.md lists flags `prewarm serve` does not have: {sorted(listed - flags)}"


def test_every_exported_metric_family_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    families = _exported_metric_families()
    assert "prewarm_rpc_total" in families and "prewarm_busy_gpus" in families  # the registry was read
    missing = sorted(f for f in families if not re.search(rf"`{f}(\{{[^`]*\}})?`", readme))
    assert not missing, f"README.md's metrics list lacks {missing}"
    named = set(re.findall(r"`(prewarm_[a-z_]+)", readme))
    gone = sorted(named - families)
    assert not gone, f"README.md names metrics the server does not export: {gone}"


# --- moving from KEDA's built-in triggers -------------------------------------------

KEDA_DEFAULT_TARGET = {"rabbitmq": 20.0, "aws-sqs-queue": 5.0}  # KEDA's own defaults
RESOLVED_FROM_ENV = {  # what KEDA would read from the workload's environment
    "amqp": "amqp://user:password@rabbitmq.messaging.svc.cluster.local:5672/",
    "http": "http://user:password@rabbitmq.messaging.svc.cluster.local:15672/",
}


def _migration_pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Moving from KEDA's built-in", 1)[1].split("\n## ", 1)[0]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    triggers = [t for block in blocks for t in block["triggers"]]
    return list(zip(triggers[::2], triggers[1::2], strict=True))


def test_the_readme_migrates_both_built_in_triggers() -> None:
    assert sorted(before["type"] for before, _ in _migration_pairs()) == ["aws-sqs-queue", "rabbitmq"]


@pytest.mark.parametrize(("before", "after"), _migration_pairs(), ids=lambda t: t["type"])
def test_readme_migration_is_type_and_scaler_address_only_and_parses(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert after["type"] in ("external", "external-push")
    # the one-line change: the metadata is KEDA's, plus scalerAddress
    assert {k: v for k, v in after["metadata"].items() if k != "scalerAddress"} == before["metadata"]
    assert "scalerAddress" in after["metadata"]
    metadata = dict(after["metadata"])
    if "hostFromEnv" in metadata:
        metadata["hostFromEnv"] = RESOLVED_FROM_ENV[metadata.get("protocol", "amqp")]
    cfg = parse_trigger(metadata)
    assert cfg.unknown_keys == ()
    assert cfg.mode.value == "deployment"
    # the target KEDA's built-in scaler would use: value, queueLength, or its default
    target = before["metadata"].get("value") or before["metadata"].get("queueLength")
    assert cfg.queue_length == (float(target) if target else KEDA_DEFAULT_TARGET[before["type"]])
    assert (
        cfg.source is not None
        and cfg.source.value == {"rabbitmq": "rabbitmq", "aws-sqs-queue": "sqs"}[before["type"]]
    )
