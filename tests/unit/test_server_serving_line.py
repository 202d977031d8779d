"""The "serving" log line states what the server runs with: the access limits above all,
since a misspelled PREWARM_* variable leaves one off without any other sign."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from scaler.access import AccessPolicy, Patterns
from scaler.server import ScalerServer, Settings


async def serving_line(caplog: pytest.LogCaptureFixture, **settings: Any) -> dict[str, Any]:
    server = ScalerServer(Settings(host="127.0.0.1", port=0, metrics_port=None, **settings))
    with caplog.at_level(logging.INFO, logger="scaler.server"):
        await server.start()
    try:
        (record,) = [r for r in caplog.records if r.getMessage() == "serving"]
        return vars(record)
    finally:
        await server.stop()


async def test_the_serving_line_says_when_no_limit_is_on(caplog: pytest.LogCaptureFixture) -> None:
    record = await serving_line(caplog)
    assert record["allowed_hosts"] == "any"
    assert record["ambient_identity_namespaces"] == "any"
    assert record["tls"] is False and record["max_connection_age_s"] is None


async def test_the_serving_line_states_the_limits_in_effect(caplog: pytest.LogCaptureFixture) -> None:
    access = AccessPolicy(
        allowed_hosts=Patterns.parse("*.svc.cluster.local,10.0.0.0/16", what="host pattern"),
        ambient_identity_namespaces=Patterns.parse("", what="namespace pattern"),
    )
    record = await serving_line(caplog, access=access)
    assert record["allowed_hosts"] == "*.svc.cluster.local,10.0.0.0/16"
    assert record["ambient_identity_namespaces"] == "none"
