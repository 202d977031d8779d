"""TLS and mTLS on the real gRPC server, with certificates made here by `cryptography`.

Each test starts the project's ScalerServer on 127.0.0.1 (any free port, no
/metrics) and talks to it over a real TLS connection. The RPCs used need no
queue: the health check, and GetMetricSpec (answered from the metadata alone).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

import scaler.server
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import ScalerServer, Settings
from scaler.tls import CertificateFiles, TlsConfigError

pytestmark = pytest.mark.integration

RPC_TIMEOUT = 5.0
RABBIT_METADATA = {"source": "rabbitmq", "host": "amqp://guest:guest@127.0.0.1:5672/", "queueName": "tls-q"}


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str) -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key, cert


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str, *, server: bool
) -> Pem:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class Pki:
    """A CA with one server and one client certificate it signed."""

    ca: Pem
    server: Pem
    client: Pem


def make_pki(name: str) -> Pki:
    ca, ca_key, ca_cert = make_ca(f"{name} CA")
    return Pki(
        ca=ca,
        server=make_leaf(ca_key, ca_cert, f"{name} scaler", server=True),
        client=make_leaf(ca_key, ca_cert, f"{name} keda-operator", server=False),
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file the way kubelet updates a mounted Secret: never half-written."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class CertPaths:
    cert: Path
    key: Path
    client_ca: Path

    def install(self, pki: Pki, client_ca: Pem | None = None) -> None:
        write_atomically(self.cert, pki.server.cert)
        write_atomically(self.key, pki.server.key)
        write_atomically(self.client_ca, (client_ca or pki.ca).cert)


@pytest.fixture
def paths(tmp_path: Path) -> CertPaths:
    return CertPaths(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")


async def start_server(paths: CertPaths, *, mtls: bool) -> ScalerServer:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        metrics_port=None,
        health_port=0,  # the plaintext health-only port, for kubelet grpc probes
        tls_cert=str(paths.cert),
        tls_key=str(paths.key),
        tls_client_ca=str(paths.client_ca) if mtls else None,
    )
    server = ScalerServer(settings)
    await server.start()
    return server


@pytest.fixture
async def pki_a() -> Pki:
    return make_pki("alpha")


@pytest.fixture
async def tls_server(paths: CertPaths, pki_a: Pki) -> AsyncIterator[ScalerServer]:
    paths.install(pki_a)
    server = await start_server(paths, mtls=False)
    yield server
    await server.stop()


@pytest.fixture
async def mtls_server(paths: CertPaths, pki_a: Pki) -> AsyncIterator[ScalerServer]:
    paths.install(pki_a)
    server = await start_server(paths, mtls=True)
    yield server
    await server.stop()


async def check(server: ScalerServer, trust: Pem, client: Pem | None = None) -> str:
    """Health check and GetMetricSpec over a fresh TLS channel; returns the metric name."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trust.cert,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        ref = pb.ScaledObjectRef(name="tls", namespace="default", scalerMetadata=RABBIT_METADATA)
        spec = await pb_grpc.ExternalScalerStub(channel).GetMetricSpec(ref, timeout=RPC_TIMEOUT)
        return spec.metricSpecs[0].metricName


async def refused(server: ScalerServer, trust: Pem, client: Pem | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await check(server, trust, client)
    return info.value


async def test_tls_serves_a_client_that_trusts_the_ca(tls_server: ScalerServer, pki_a: Pki) -> None:
    assert await check(tls_server, pki_a.ca) == "rabbitmq-tls-q"


async def test_plaintext_client_is_refused_by_a_tls_server(tls_server: ScalerServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_client_trusting_another_ca_fails(tls_server: ScalerServer) -> None:
    other = make_pki("stranger")
    err = await refused(tls_server, other.ca)
    assert err.code() is grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_without_a_certificate(mtls_server: ScalerServer, pki_a: Pki) -> None:
    err = await refused(mtls_server, pki_a.ca)
    assert err.code() is grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_certificate_from_another_ca(
    mtls_server: ScalerServer, pki_a: Pki
) -> None:
    other = make_pki("stranger")
    err = await refused(mtls_server, pki_a.ca, other.client)
    assert err.code() is grpc.StatusCode.UNAVAILABLE


async def test_mtls_serves_a_client_with_a_certificate_from_the_client_ca(
    mtls_server: ScalerServer, pki_a: Pki
) -> None:
    assert await check(mtls_server, pki_a.ca, pki_a.client) == "rabbitmq-tls-q"


async def test_rotated_certificates_are_used_without_a_restart(
    mtls_server: ScalerServer, paths: CertPaths, pki_a: Pki
) -> None:
    assert await check(mtls_server, pki_a.ca, pki_a.client) == "rabbitmq-tls-q"
    pki_b = make_pki("bravo")
    paths.install(pki_b)
    # The same server process: a client of the new CA gets in, one of the old CA no longer does.
    assert await check(mtls_server, pki_b.ca, pki_b.client) == "rabbitmq-tls-q"
    assert (await refused(mtls_server, pki_a.ca, pki_a.client)).code() is grpc.StatusCode.UNAVAILABLE
    assert mtls_server.tls_files is not None
    assert mtls_server.tls_files.reloads == 1


async def test_a_mismatched_rotation_keeps_the_last_good_certificate(
    tls_server: ScalerServer, paths: CertPaths, pki_a: Pki
) -> None:
    pki_b = make_pki("bravo")
    # Half a rotation: the new certificate with the old key. Never served.
    write_atomically(paths.cert, pki_b.server.cert)
    assert await check(tls_server, pki_a.ca) == "rabbitmq-tls-q"
    assert (await refused(tls_server, pki_b.ca)).code() is grpc.StatusCode.UNAVAILABLE
    # The key arrives: the next connection uses the new pair.
    write_atomically(paths.key, pki_b.server.key)
    assert await check(tls_server, pki_b.ca) == "rabbitmq-tls-q"


def test_bad_files_at_start_up_name_the_file(paths: CertPaths, pki_a: Pki) -> None:
    paths.install(pki_a)
    with pytest.raises(TlsConfigError, match=r"tls\.crt.*matching private key"):
        CertificateFiles(str(paths.cert), str(paths.client_ca))  # a CA cert is not the server key
    with pytest.raises(TlsConfigError, match=r"missing\.pem"):
        CertificateFiles(str(paths.cert), str(paths.key), str(paths.cert.parent / "missing.pem"))


async def test_plaintext_health_port_serves_only_health(mtls_server: ScalerServer) -> None:
    """The kubelet's grpc probe cannot do TLS: a separate plaintext port answers
    the health check, and nothing else."""
    assert mtls_server.health_port not in (None, 0, mtls_server.port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_server.health_port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        ref = pb.ScaledObjectRef(name="tls", namespace="default", scalerMetadata=RABBIT_METADATA)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.ExternalScalerStub(channel).GetMetricSpec(ref, timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_rotation_through_a_kubelet_style_secret_volume(tmp_path: Path, pki_a: Pki) -> None:
    """A mounted Secret is `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>/`; kubelet
    rotates it by writing a new timestamped directory and swapping the `..data` link."""
    volume = tmp_path / "volume"
    volume.mkdir()

    def publish(pki: Pki, version: str) -> None:
        directory = volume / f"..{version}"
        directory.mkdir()
        (directory / "tls.crt").write_bytes(pki.server.cert)
        (directory / "tls.key").write_bytes(pki.server.key)
        (directory / "ca.crt").write_bytes(pki.ca.cert)
        link = volume / "..data_tmp"
        link.symlink_to(directory.name)
        os.replace(link, volume / "..data")

    publish(pki_a, "2026_01_01")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (volume / name).symlink_to(f"..data/{name}")
    paths = CertPaths(volume / "tls.crt", volume / "tls.key", volume / "ca.crt")
    server = await start_server(paths, mtls=True)
    try:
        assert await check(server, pki_a.ca, pki_a.client) == "rabbitmq-tls-q"
        pki_b = make_pki("bravo")
        publish(pki_b, "2026_03_01")
        assert await check(server, pki_b.ca, pki_b.client) == "rabbitmq-tls-q"
        assert (await refused(server, pki_a.ca, pki_a.client)).code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop()


async def test_an_mtls_connection_ends_at_its_maximum_age_so_a_rotated_ca_reaches_it(
    paths: CertPaths, pki_a: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client CA is checked only at the handshake: a connection opened before a
    rotation that revokes its CA kept working for as long as the client kept it open
    (KEDA: indefinitely). With a maximum age the server sends GOAWAY, the client's next
    call needs a new handshake, and the new CA refuses it."""
    monkeypatch.setattr(scaler.server, "MAX_CONNECTION_AGE_GRACE", 0.5)
    paths.install(pki_a)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        metrics_port=None,
        tls_cert=str(paths.cert),
        tls_key=str(paths.key),
        tls_client_ca=str(paths.client_ca),
        max_connection_age=1.0,
    )
    server = ScalerServer(settings)
    await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(pki_a.ca.cert, pki_a.client.key, pki_a.client.cert)
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT)
            paths.install(make_pki("bravo"))  # the old CA revoked
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 8.0  # 1 s (+10 % jitter) and the grace, with room
            while True:
                try:
                    await health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() is grpc.StatusCode.UNAVAILABLE
                    break
                assert loop.time() < deadline, "the connection opened before the rotation still works"
                await asyncio.sleep(0.1)
    finally:
        await server.stop()


async def test_a_stream_cut_by_the_maximum_age_is_reopened_on_a_new_connection(
    paths: CertPaths, pki_a: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What KEDA sees: an open StreamIsActive ends (UNAVAILABLE) once the age and its
    grace have passed, and the stream it opens again works, on a new connection."""
    monkeypatch.setattr(scaler.server, "MAX_CONNECTION_AGE_GRACE", 0.5)
    paths.install(pki_a)
    server = ScalerServer(
        Settings(
            host="127.0.0.1",
            port=0,
            metrics_port=None,
            tls_cert=str(paths.cert),
            tls_key=str(paths.key),
            tls_client_ca=str(paths.client_ca),
            max_connection_age=1.0,
        )
    )
    await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(pki_a.ca.cert, pki_a.client.key, pki_a.client.cert)
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(name="tls", namespace="default", scalerMetadata=RABBIT_METADATA)
            stream = stub.StreamIsActive(ref, timeout=10.0)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _answer in stream:
                    pass
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            spec = await stub.GetMetricSpec(ref, timeout=RPC_TIMEOUT)
            assert spec.metricSpecs[0].metricName == "rabbitmq-tls-q"
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("client_ca", "age", "expected"),
    [
        (True, None, (3_600_000, 30_000)),  # mTLS: an hour by default
        (False, None, None),  # no client CA: no limit by default
        (True, 0.0, None),  # 0: no limit
        (False, 90.0, (90_000, 30_000)),
    ],
)
def test_maximum_connection_age_options(
    paths: CertPaths, client_ca: bool, age: float | None, expected: tuple[int, int] | None
) -> None:
    settings = Settings(
        tls_cert=str(paths.cert),
        tls_key=str(paths.key),
        tls_client_ca=str(paths.client_ca) if client_ca else None,
        max_connection_age=age,
    )
    options = dict(ScalerServer(settings)._grpc_options())
    found = (
        (options["grpc.max_connection_age_ms"], options["grpc.max_connection_age_grace_ms"])
        if ("grpc.max_connection_age_ms" in options)
        else None
    )
    assert found == expected
