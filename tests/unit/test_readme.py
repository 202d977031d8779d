"""The README's examples are what newcomers copy: they must be objects a cluster
accepts (KEDA's CRD schemas, strict) and metadata the scaler parses with no
unknown key. Its commands must be the Makefile targets that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_manifests import PLAUSIBLE_FROM_ENV, keda_validators

from scaler.config import parse_trigger

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
