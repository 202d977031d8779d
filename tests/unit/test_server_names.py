"""GetMetrics metric-name matching: KEDA strips its `s<index>-` prefix, older KEDA lower-cased names."""

from __future__ import annotations

import pytest

from scaler.server import _matches

OURS = "sqs-gpu-jobs"


@pytest.mark.parametrize(
    "requested",
    [
        "",  # KEDA sent no name: the trigger's only metric
        "sqs-gpu-jobs",
        "SQS-GPU-JOBS",
        "Sqs-Gpu-Jobs",
        "s0-sqs-gpu-jobs",
        "s1-sqs-gpu-jobs",
        "s12-sqs-gpu-jobs",
        "S3-SQS-GPU-JOBS",
    ],
)
def test_accepted(requested: str) -> None:
    assert _matches(requested, OURS)


@pytest.mark.parametrize(
    "requested",
    [
        "sqs-other",
        "sqs-gpu-job",
        "sqs-gpu-jobs-2",
        "gpu-jobs",
        "s-sqs-gpu-jobs",  # no index
        "x0-sqs-gpu-jobs",  # not an `s` prefix
        "s0x-sqs-gpu-jobs",  # index not all digits
        "s0-s1-sqs-gpu-jobs",  # only one prefix is KEDA's
        "s0-",
        "s0-sqs-other",
        " sqs-gpu-jobs",
        "s0sqs-gpu-jobs",
    ],
)
def test_rejected(requested: str) -> None:
    assert not _matches(requested, OURS)


def test_a_name_that_itself_looks_prefixed() -> None:
    assert _matches("s1-work", "s1-work")
    assert _matches("s0-s1-work", "s1-work")
    assert not _matches("s1-work", "work-s1")
