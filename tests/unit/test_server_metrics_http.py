"""The /metrics HTTP server's address: the gRPC server's, with IPv4 when IPv6 is off."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from scaler.server import start_metrics_http


class Starter:
    """Stands in for prometheus_client.start_http_server; "::" fails as on a node
    with IPv6 turned off, when told to."""

    def __init__(self, ipv6: bool) -> None:
        self.ipv6 = ipv6
        self.addresses: list[str] = []

    def __call__(self, port: int, addr: str, registry: CollectorRegistry) -> tuple[Any, None]:
        self.addresses.append(addr)
        if addr == "::" and not self.ipv6:
            raise OSError(97, "Address family not supported by protocol")
        return (f"server on {addr}:{port}", None)


@pytest.mark.parametrize(
    ("host", "addresses"), [("[::]", ["::"]), ("::", ["::"]), ("127.0.0.1", ["127.0.0.1"])]
)
def test_the_grpc_host_is_the_metrics_host(host: str, addresses: list[str]) -> None:
    start = Starter(ipv6=True)
    assert (
        start_metrics_http(8080, host, CollectorRegistry(), start=start) == f"server on {addresses[0]}:8080"
    )
    assert start.addresses == addresses


def test_every_address_falls_back_to_ipv4_when_ipv6_is_off() -> None:
    start = Starter(ipv6=False)
    assert start_metrics_http(8080, "[::]", CollectorRegistry(), start=start) == "server on 0.0.0.0:8080"
    assert start.addresses == ["::", "0.0.0.0"]


def test_a_named_address_that_fails_is_not_replaced() -> None:
    def refuse(port: int, addr: str, registry: CollectorRegistry) -> tuple[Any, None]:
        raise OSError(99, "Cannot assign requested address")

    with pytest.raises(OSError):
        start_metrics_http(8080, "10.0.0.7", CollectorRegistry(), start=refuse)
