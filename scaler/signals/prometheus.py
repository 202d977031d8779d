"""Prometheus queries that must answer one number: busy GPUs, the arrival rate
and the measured cold start (the forecast's), and the arrival rate's history.

Built on prometheus-api-client's PrometheusConnect. The GPU query is either the
user's `gpuQuery` or `sum(DCGM_FI_DEV_GPU_UTIL{<gpuSelector>}) / 100`. Only a
successful query with no series counts as 0 busy GPUs; NaN, infinities, negative
values, several series or a range vector are errors, never a made-up number.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from scaler.signals.base import (
    ArrivalReading,
    ColdStartReading,
    GpuReading,
    SharedHTTPPools,
    SourceError,
    SourceRejectedQuery,
    mount_shared_pools,
)
from scaler.signals.errors import connection_failure, redirected, server_message, unexpected, url_endpoint

log = logging.getLogger(__name__)


class QueryConfig(Protocol):
    """What a PrometheusSource reads: config.GpuConfig or config.PrometheusQuery."""

    @property
    def server_address(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def bearer_token(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def unsafe_ssl(self) -> bool: ...
    def credential_identity(self) -> str: ...


def _gpu(value: float, series: int) -> object:
    return GpuReading(busy_gpus=value, series=series)


def _arrival(value: float, series: int) -> object:
    return ArrivalReading(rate=value)


def _cold_start(value: float, series: int) -> object:
    return ColdStartReading(seconds=value)


# What the one number means, for readings and error messages: (reading, what, key suffix).
READINGS: dict[str, tuple[Callable[[float, int], object], str, str]] = {
    "gpu": (_gpu, "busy GPUs", ""),
    "arrival": (_arrival, "an arrival rate", "|arrival"),
    "cold start": (_cold_start, "a cold start in seconds", "|cold-start"),
}


def _duration(seconds: float) -> str:
    """A duration as Prometheus's API reads it: whole seconds ("5s"), else whole
    milliseconds ("2500ms"). "2.5s" would be refused: Prometheus takes a plain
    number or a duration in whole units, and answers 400 bad_data otherwise."""
    if seconds == int(seconds) and seconds >= 1:
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _finite(text: Any) -> float | None:
    """A finite number from an answer's field; None for anything else."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _short(query: str, limit: int = 200) -> str:
    return query if len(query) <= limit else query[: limit - 3] + "..."


class PrometheusSource:
    def __init__(
        self,
        cfg: QueryConfig,
        *,
        timeout: float = 5.0,
        reads: str = "gpu",
        ignore_null_values: bool = True,
        pools: SharedHTTPPools | None = None,
    ) -> None:
        """`pools`: the HTTP connection pools every HTTP source shares
        (base.SharedHTTPPools); without, the source keeps its own."""
        self._cfg = cfg
        self._pools = pools
        self._make, self._what, self._key_suffix = READINGS[reads]
        # False: an answer with no series is an error (KEDA's ignoreNullValues).
        self._ignore_null_values = ignore_null_values
        if not ignore_null_values:
            self._key_suffix += "|no-null"
        self._timeout = timeout
        self._lock = threading.Lock()
        self._client: PrometheusConnect | None = None
        self._last_response: requests.Response | None = None

    @cached_property  # hashed once; read on every call
    def key(self) -> str:
        cfg = self._cfg
        return f"prometheus|{cfg.server_address}|{cfg.credential_identity()}|{cfg.query}{self._key_suffix}"

    @property
    def description(self) -> str:
        return f"prometheus at {self._cfg.server_address}, query {_short(self._cfg.query)!r}"

    @cached_property
    def endpoint(self) -> str:
        """The server read (Source.endpoint)."""
        return url_endpoint(self._cfg.server_address)

    def read(self) -> object:
        params = {"timeout": _duration(self._timeout)}
        return self._reading(self._query(lambda client: client.custom_query(self._cfg.query, params=params)))

    def history(self, start_wall: float, end_wall: float, step_s: float) -> list[tuple[float, float]]:
        """The query's values from start to end every step (one range query):
        [(unix time, value)], NaN and negative values left out. Raises SourceError."""
        from datetime import UTC, datetime

        def run(client: PrometheusConnect) -> Any:
            return client.custom_query_range(
                self._cfg.query,
                start_time=datetime.fromtimestamp(start_wall, UTC),
                end_time=datetime.fromtimestamp(end_wall, UTC),
                step=_duration(step_s),
                params={"timeout": _duration(self._timeout)},
            )

        result = self._query(run)
        if not isinstance(result, list) or not all(isinstance(series, dict) for series in result):
            raise self._bad_range_answer("not a list of series")
        if len(result) > 1:
            raise SourceError(f"{self.description}: the history must be one series, got {len(result)}")
        points: list[tuple[float, float]] = []
        for series in result:
            values = series.get("values")
            if not isinstance(values, list):
                raise self._bad_range_answer("no list of values")
            for point in values:
                if not isinstance(point, list) or len(point) != 2:
                    raise self._bad_range_answer("a point that is not [time, value]")
                stamp = _finite(point[0])
                if stamp is None:
                    raise self._bad_range_answer("a time that is not a number")
                value = _finite(point[1])
                if value is not None and value >= 0:  # NaN, negative and the like are left out
                    points.append((stamp, value))
        return points

    def _bad_range_answer(self, why: str) -> SourceError:
        return SourceError(f"{self.description}: unexpected answer to the range query ({why})")

    def _query(self, run: Callable[[PrometheusConnect], Any]) -> Any:
        with self._lock:
            client = self._connect()
            self._last_response = None
            try:
                # Prometheus's own `timeout` bounds the evaluation; requests' bounds the wire.
                return run(client)
            except PrometheusApiClientException:
                raise self._http_error() from None
            except requests.TooManyRedirects as exc:
                # Not followed (max_redirects 0), so never sent: the answer was a redirect.
                raise self._redirected(exc.response) from None
            except requests.exceptions.JSONDecodeError:
                # Before RequestException, which it also is: a 200 answer that is not JSON.
                raise self._not_prometheus() from None
            except requests.RequestException as exc:
                raise SourceError(f"{self.description}: {self._request_failed(exc)}") from None
            except (ValueError, KeyError, TypeError) as exc:
                if self._last_response is None:
                    # Raised before any answer came (a request that could not be
                    # sent, such as a header value it cannot encode): not the
                    # answer's fault. Its type only: its text may quote a credential.
                    log.debug("reading %s failed before an answer", self.description, exc_info=True)
                    raise SourceError(f"{self.description}: {unexpected(exc)}") from None
                # Parsing the answer failed: a 200 answer that is not Prometheus's JSON.
                raise self._not_prometheus() from None

    def _not_prometheus(self) -> SourceError:
        return SourceError(
            f"{self.description}: the answer is not Prometheus's API JSON; check that "
            "prometheusServerAddress points at Prometheus (or a compatible API) itself"
        )

    def _request_failed(self, exc: requests.RequestException) -> str:
        """The cause of a request that got no HTTP answer, saying what to check."""
        parts = urlsplit(self._cfg.server_address)
        described = connection_failure(
            exc,
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            timeout=self._timeout,
            host_key="prometheusServerAddress",
            server="Prometheus",
            tls_hint='check that its certificate is signed by a CA the scaler trusts (unsafeSsl: "true" '
            "skips verification)",
        )
        return described or f"request failed ({type(exc).__name__})"

    def _connect(self) -> PrometheusConnect:
        if self._client is None:
            cfg = self._cfg
            session = requests.Session()
            session.verify = not cfg.unsafe_ssl
            # No redirect is followed: --allowed-hosts checks only the configured
            # address, and a redirect could send the read (and show its answer)
            # anywhere the scaler's network reaches. A 3xx is reported instead.
            session.max_redirects = 0
            # Keep the failed answer: the client library reduces it to a string.
            session.hooks["response"].append(self._remember)
            # Credentials go as UTF-8 bytes, as KEDA (Go) sends them: requests would
            # encode a str as latin-1, which fails (or changes) a non-ASCII password.
            headers = {"Authorization": b"Bearer " + cfg.bearer_token.encode()} if cfg.bearer_token else None
            auth = (
                requests.auth.HTTPBasicAuth(cfg.username.encode(), (cfg.password or "").encode())
                if cfg.username is not None
                else None
            )
            self._client = PrometheusConnect(
                url=cfg.server_address,
                headers=headers,
                auth=auth,
                session=session,
                timeout=self._timeout,
                # No retries: a failed read is reported at once, the cache's TTL paces the next one.
                retry=Retry(total=0, raise_on_status=False),
            )
            if self._pools is not None:
                # In place of the client's own adapter for this server (the shared pools
                # retry nothing either): a connection per server, not per query.
                mount_shared_pools(session, self._pools, self._client.url)
        return self._client

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def _http_error(self) -> SourceError:
        response = self._last_response
        if response is None:
            return SourceError(f"{self.description}: unexpected answer")
        status = response.status_code
        if 300 <= status < 400:
            return self._redirected(response)
        if status in (401, 403):
            return SourceError(
                f"{self.description}: access denied (HTTP {status}); check the credentials "
                "(prometheusBearerToken, or prometheusUsername and prometheusPassword)"
            )
        secrets = (self._cfg.bearer_token, self._cfg.password)
        message, error_type = _prometheus_error(response, secrets)
        if status == 400 and error_type == "bad_data":
            # Prometheus rejects the query itself (a PromQL syntax error): a config problem.
            return SourceRejectedQuery(f"{self.description}: Prometheus rejected the query: {message}")
        detail = f"{message}" if message else "no error message"
        if status == 404:
            detail += "; check that prometheusServerAddress is Prometheus's base URL (the API is /api/v1)"
        return SourceError(f"{self.description}: HTTP {status}: {detail}")

    def _redirected(self, response: requests.Response | None) -> SourceError:
        cause = redirected(
            response.status_code if response is not None else None,
            response.headers.get("Location") if response is not None else None,
            (response.url if response is not None else None) or self._cfg.server_address,
            "prometheusServerAddress",
        )
        return SourceError(f"{self.description}: {cause} (its base URL, without /api/v1)")

    def _reading(self, result: Any) -> object:
        if not isinstance(result, list):
            raise SourceError(f"{self.description}: unexpected answer (not a list)")
        if not result:
            if not self._ignore_null_values:
                raise SourceError(
                    f"{self.description}: the query matched no series (is dcgm-exporter up and "
                    'scraped, and does the selector match its labels?); ignoreNullValues is "false", '
                    "so that is an error, not 0"
                )
            # The query ran and matched nothing: no GPU of the workload is busy,
            # no request came in (a counter not yet exported).
            return self._make(0.0, 0)
        if len(result) == 2 and not isinstance(result[0], dict):
            # A scalar answer: [time, "value"].
            return self._make(self._number(result[1]), 1)
        if not all(isinstance(item, dict) for item in result):
            raise SourceError(f"{self.description}: unexpected answer")
        if any("values" in item for item in result):
            raise SourceError(
                f"{self.description}: the query returns a range vector; it must return one number "
                "(wrap it, e.g. in avg_over_time(...))"
            )
        if len(result) > 1:
            raise SourceError(
                f"{self.description}: the query returns {len(result)} series; it must return one "
                "number (aggregate them, e.g. sum(...))"
            )
        value = result[0].get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise SourceError(f"{self.description}: unexpected answer (no value)")
        return self._make(self._number(value[1]), 1)

    def _number(self, text: Any) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise SourceError(f"{self.description}: the answer {text!r} is not a number") from None
        if math.isnan(value):
            raise SourceError(f"{self.description}: the answer is NaN (a division by zero in the query?)")
        if math.isinf(value):
            raise SourceError(f"{self.description}: the answer is infinite")
        if value < 0:
            raise SourceError(f"{self.description}: the answer {value:g} is negative; expected {self._what}")
        return value

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


# Characters of Prometheus's own error shown: a PromQL error names the series it
# found before saying what is wrong ("found duplicate series ... many-to-many
# matching not allowed"), so more than other servers' messages; far under the
# 8 to 16 kB gRPC trailer cap.
MAX_PROMETHEUS_MESSAGE = 1000


def _prometheus_error(response: requests.Response, secrets: tuple[str | None, ...] = ()) -> tuple[str, str]:
    """Prometheus's own error message and type from an error answer, as
    errors.server_message shows it (first line, capped, credential-like text and
    the request's own credentials redacted): a proxy's error page may quote the
    request, and a message past gRPC's trailer cap would not reach KEDA."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return server_message(response.text, MAX_PROMETHEUS_MESSAGE, secrets), ""
    if not isinstance(body, dict):
        return "", ""
    error = server_message(str(body.get("error", "")), MAX_PROMETHEUS_MESSAGE, secrets)
    return error, str(body.get("errorType", ""))
