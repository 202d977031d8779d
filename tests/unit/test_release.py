"""The release workflow, the Dockerfile and the manifests agree: the image the
workflow publishes is the one the manifests and the README name, at the
package's version; the workflow builds both architectures with an SBOM."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

import scaler

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def _workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def _version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _published_image() -> str:
    return str(_workflow()["env"]["IMAGE"])


def test_the_package_says_its_version() -> None:
    # `prewarm --version`, the "serving" log line and prewarm_build_info read it.
    assert scaler.__version__ == _version()


def test_workflow_releases_on_version_tags() -> None:
    workflow = _workflow()
    on = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert on == {"push": {"tags": ["v*.*.*"]}}
    assert workflow["permissions"] == {"contents": "read"}  # write only where the push needs it


def test_workflow_builds_both_architectures_with_an_sbom() -> None:
    steps = _workflow()["jobs"]["image"]["steps"]
    (build,) = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True and build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    (check,) = [s for s in steps if "pyproject.toml" in str(s.get("run", ""))]
    assert "GITHUB_REF_NAME" in check["run"]  # the tag must be the package's version


def test_manifests_and_readme_name_the_published_image() -> None:
    image, version = _published_image(), _version()
    assert re.fullmatch(r"ghcr\.io/[a-z0-9-]+/prewarm", image), image
    kustomization = yaml.safe_load((REPO / "manifests" / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "prewarm", "newName": image, "newTag": version}]
    assert f"{image}:{version}" in (REPO / "README.md").read_text()
    assert f"{image}:{version}" in (REPO / "docs" / "deploy.md").read_text()


def test_dockerfile_base_is_a_build_argument() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    (arg,) = [line for line in lines if line.startswith("ARG BASE_IMAGE=")]
    assert re.fullmatch(r"ARG BASE_IMAGE=python:3\.\d+\.\d+-slim-bookworm", arg), arg
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms[0] == "FROM ${BASE_IMAGE} AS builder"
    assert froms[-1] == "FROM ${BASE_IMAGE}"
