"""The memory benchmark refuses settings it cannot measure before it creates a queue
or starts a server (the measurement itself needs the broker: docs/deploy.md quotes it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_memory as bench


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--objects", "10", "--queues", "20"], "queues <= objects"),
        (["--source", "sqs", "--via", "http"], "only with --source rabbitmq"),
        (["--replica-throughput", "1"], "needs a publish rate: --via http"),
        (["--source", "sqs", "--replica-throughput", "1"], "needs a publish rate: --via http"),
    ],
)
def test_it_refuses_what_it_cannot_measure(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "rabbitmq_queues", lambda *a: pytest.fail("created queues"))
    monkeypatch.setattr(bench, "sqs_queues", lambda *a: pytest.fail("created queues"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
