"""The forecast's metadata: defaults, every key plain and ...FromEnv, errors that name
the key, and the Prometheus connection shared with the GPU signal."""

from __future__ import annotations

import pytest

from scaler.config import ConfigError, ForecastMode, parse_trigger

QUEUE = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/jobs"}
PROM = "http://prometheus:9090"


def test_defaults() -> None:
    fc = parse_trigger(QUEUE).forecast
    assert fc.mode is ForecastMode.AUTO
    assert fc.cold_start_seconds == 300 and fc.quantile == 0.9 and fc.max_prewarm_jobs == 0
    assert fc.arrival_query is None and fc.cold_start_query is None and fc.replica_throughput is None
    assert fc.drain_seconds is None  # the capacity term drains over the cold start in use
    assert fc.hold_seconds is None  # and holds over it
    assert parse_trigger({**QUEUE, "replicaThroughput": "1", "holdSeconds": "0"}).forecast.hold_seconds == 0


@pytest.mark.parametrize("suffix", ["", "FromEnv"])
def test_every_key_plain_and_from_env(suffix: str) -> None:
    meta = {
        **QUEUE,
        "prometheusServerAddress" + suffix: PROM,
        "arrivalQuery" + suffix: "sum(rate(requests_total[1m]))",
        "coldStartQuery" + suffix: "max(kube_pod_status_ready_time - kube_pod_created)",
        "coldStartSeconds" + suffix: "240",
        "replicaThroughput" + suffix: "2.5",
        "forecast" + suffix: "Advisory",
        "forecastQuantile" + suffix: "0.95",
        "drainSeconds" + suffix: "90",
        "holdSeconds" + suffix: "900",
    }
    cfg = parse_trigger(meta)
    fc = cfg.forecast
    assert fc.drain_seconds == 90 and fc.hold_seconds == 900
    assert cfg.gpu is None  # Prometheus for the forecast does not switch GPUs on
    assert fc.mode is ForecastMode.ADVISORY and fc.cold_start_seconds == 240
    assert fc.replica_throughput == 2.5 and fc.quantile == 0.95
    assert fc.arrival_query is not None and fc.arrival_query.query == "sum(rate(requests_total[1m]))"
    assert fc.arrival_query.server_address == PROM
    assert fc.cold_start_query is not None and fc.cold_start_query.prometheus == fc.arrival_query.prometheus
    assert cfg.unknown_keys == ()
    jobs = parse_trigger({**QUEUE, "mode": "job", "maxPrewarmJobs" + suffix: "4"}).forecast
    assert jobs.max_prewarm_jobs == 4


def test_gpu_and_forecast_share_one_prometheus() -> None:
    cfg = parse_trigger(
        {
            **QUEUE,
            "prometheusServerAddress": "http://bob:pw@prometheus:9090",
            "gpuSelector": 'namespace="ai"',
            "arrivalQuery": "sum(rate(x[1m]))",
        }
    )
    assert cfg.gpu is not None and cfg.forecast.arrival_query is not None
    assert cfg.forecast.arrival_query.server_address == cfg.gpu.server_address == PROM
    assert cfg.forecast.arrival_query.username == "bob"
    assert "pw" not in repr(cfg)


@pytest.mark.parametrize(
    ("extra", "key", "says"),
    [
        ({"forecast": "maybe"}, "forecast", "'auto' or 'off' or 'advisory'"),
        ({"coldStartSeconds": "5"}, "coldStartSeconds", "10 to 3600"),
        ({"coldStartSeconds": "7200"}, "coldStartSeconds", "10 to 3600"),
        ({"coldStartSeconds": "soon"}, "coldStartSeconds", "seconds from 10 to 3600"),
        # every refusal names the range accepted, and the value as written
        ({"coldStartSeconds": "0"}, "coldStartSeconds", "seconds from 10 to 3600, got '0'"),
        ({"coldStartSeconds": "NaN"}, "coldStartSeconds", "seconds from 10 to 3600"),
        ({"coldStartSeconds": "0.0005"}, "coldStartSeconds", "seconds from 10 to 3600"),
        ({"coldStartSeconds": "1e9"}, "coldStartSeconds", "seconds from 10 to 3600, got '1e9'"),
        ({"forecastQuantile": "NaN"}, "forecastQuantile", "a number >= 0.5 and < 1"),
        ({"forecastQuantile": "1000000000.5"}, "forecastQuantile", "a number >= 0.5 and < 1"),
        ({"forecastQuantile": "1.0"}, "forecastQuantile", "a number >= 0.5 and < 1, got '1.0'"),
        ({"replicaThroughput": "0"}, "replicaThroughput", "> 0"),
        ({"forecastQuantile": "0.3"}, "forecastQuantile", ">= 0.5"),
        ({"forecastQuantile": "1"}, "forecastQuantile", "< 1"),
        ({"replicaThroughput": "1", "drainSeconds": "5"}, "drainSeconds", "seconds from 10 to 3600"),
        ({"replicaThroughput": "1", "drainSeconds": "7200"}, "drainSeconds", "seconds from 10 to 3600"),
        ({"replicaThroughput": "1", "drainSeconds": "0"}, "drainSeconds", "seconds from 10 to 3600"),
        ({"replicaThroughput": "1", "drainSeconds": "soon"}, "drainSeconds", "seconds from 10 to 3600"),
        ({"drainSeconds": "60"}, "drainSeconds", "only with replicaThroughput in deployment mode"),
        ({"mode": "job", "replicaThroughput": "1", "drainSeconds": "60"}, "drainSeconds", "deployment mode"),
        ({"replicaThroughput": "1", "holdSeconds": "5"}, "holdSeconds", "0 (off) or seconds from 10 to 3600"),
        (
            {"replicaThroughput": "1", "holdSeconds": "7200"},
            "holdSeconds",
            "seconds from 10 to 3600, got '7200'",
        ),
        (
            {"replicaThroughput": "1", "holdSeconds": "-1"},
            "holdSeconds",
            "0 (off) or seconds from 10 to 3600",
        ),
        ({"replicaThroughput": "1", "holdSeconds": "later"}, "holdSeconds", "0 (off) or seconds"),
        ({"holdSeconds": "600"}, "holdSeconds", "only with replicaThroughput in deployment mode"),
        ({"mode": "job", "replicaThroughput": "1", "holdSeconds": "0"}, "holdSeconds", "deployment mode"),
        ({"maxPrewarmJobs": "-1"}, "maxPrewarmJobs", "whole number"),
        ({"maxPrewarmJobs": "2"}, "maxPrewarmJobs", "mode: job"),
        ({"arrivalQuery": "sum(x)"}, "prometheusServerAddress", "required"),
        ({"coldStartQuery": "max(x)"}, "prometheusServerAddress", "required"),
        ({"arrivalQuery": "x", "prometheusServerAddress": "ftp://p"}, "prometheusServerAddress", "http"),
    ],
)
def test_bad_forecast_metadata_names_the_key(extra: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger({**QUEUE, **extra})
    assert info.value.key == key
    assert says in str(info.value)
