"""Network faults the tests control, on loopback: a TCP proxy that can stall new
connections or freeze established ones, and a TLS server with a self-signed
certificate.

- `TcpProxy(upstream_port)`: forwards to 127.0.0.1:<upstream_port>. `stall()`:
  new connections are accepted and then never answered (a broker that accepts
  TCP and hangs). `freeze()`: established connections stop relaying in both
  directions for good, without closing (a peer gone without a FIN: a node lost,
  a partition); new connections are frozen too until `thaw()`, after which new
  connections relay again (the frozen ones never do). `cut()`: a stopped broker
  (connections closed, new ones refused) until `restore()` listens again on the
  same port.
- `TlsServer`: completes TLS handshakes with a self-signed certificate for
  127.0.0.1 and then says nothing (a server whose certificate nobody trusts).
- `write_self_signed_certificate(dir)`: the certificate and key files.

Threads, not the test's event loop: the proxy must keep (not) relaying while the
loop is busy, and serves subprocesses as well.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = LOOPBACK) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0  # connections accepted, in any mode
        self._stalled = threading.Event()
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._open: list[threading.Event] = []  # each relaying connection's frozen flag
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def stall(self) -> None:
        """New connections: accepted, read, never answered."""
        self._stalled.set()

    def freeze(self) -> None:
        """Every open connection for good, and new ones until thaw(): bytes read are
        dropped, nothing relayed, nothing closed."""
        self._frozen.set()
        with self._lock:
            for frozen in self._open:
                frozen.set()

    def thaw(self) -> None:
        """New connections relay again; those frozen stay frozen."""
        self._frozen.clear()
        self._stalled.clear()

    def cut(self) -> None:
        """A stopped broker: every connection closed (the peer sees FIN), new ones refused."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            sockets, self._sockets, self._open = self._sockets, [], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the relaying threads
            sock.close()

    def restore(self) -> None:
        """The broker back: listening again on the same port, relaying."""
        self._listener = socket.create_server((LOOPBACK, self.port))
        self._closed.clear()
        self.thaw()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def fds(self) -> set[int]:
        """The file descriptors the proxy itself holds (its listener and both ends it relays)."""
        with self._lock:
            held = [self._listener, *self._sockets]
        return {fd for fd in (sock.fileno() for sock in held) if fd >= 0}

    def url(self, scheme: str, user: str = "guest", password: str = "guest", path: str = "/%2F") -> str:
        return f"{scheme}://{user}:{password}@{LOOPBACK}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._keep(client)
            if self._stalled.is_set() or self._frozen.is_set():
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self._keep(upstream)
            frozen = threading.Event()
            with self._lock:
                self._open.append(frozen)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, frozen), daemon=True).start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    @staticmethod
    def _swallow(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def _pump(self, source: socket.socket, sink: socket.socket, frozen: threading.Event) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not frozen.is_set():
                    sink.sendall(data)
                # frozen: read and dropped, so the sender sees no error, just silence
        except OSError:
            pass
        if not frozen.is_set():
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def write_self_signed_certificate(directory: Path, name: str = "prewarm test server") -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1; returns (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
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
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class TlsServer:
    """Completes the TLS handshake with a self-signed certificate, then stays silent."""

    def __init__(self, directory: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(*write_self_signed_certificate(directory))
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, name="tls-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.settimeout(5)
            try:
                self._held.append(self._context.wrap_socket(client, server_side=True))
            except (OSError, ssl.SSLError):  # the client refused our certificate: expected
                client.close()

    def close(self) -> None:
        self._listener.close()
        for sock in self._held:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def amqp_proxy() -> Iterator[TcpProxy]:
    """A TcpProxy in front of the local RabbitMQ's AMQP port."""
    proxy = TcpProxy(5672)
    yield proxy
    proxy.close()
