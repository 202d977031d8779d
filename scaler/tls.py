"""TLS and mTLS for the gRPC server, with certificate files re-read when they change.

gRPC asks `CertificateFiles.fetch` before every new TLS handshake. It stats the
files (cheap) and only when one changed re-reads them, checks that the key
matches the certificate, and hands gRPC the new configuration. So a Secret
updated by cert-manager (kubelet swaps the mounted files atomically) is picked up
by the next connection, without a restart. Connections already open keep the
certificate they were made with, and the client CA that let them in, until they
close: with mutual TLS the server gives each connection a maximum age
(`Settings.max_connection_age`, 1 h by default) so that a rotation reaches them all.

A half-written or mismatched set of files is never served: the previous
configuration stays in use and the files are tried again at the next handshake.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass

import grpc

log = logging.getLogger(__name__)

# (inode, size, mtime in ns) per file; a change in any of them means "re-read".
_Fingerprint = tuple[tuple[int, int, int], ...]


class TlsConfigError(ValueError):
    """Certificate files that cannot be used; the message names the file and why,
    and `paths` are the files concerned (for the command line to name its flags)."""

    def __init__(self, message: str, paths: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.paths = paths


@dataclass(frozen=True)
class _Loaded:
    key: bytes
    chain: bytes
    client_ca: bytes | None


class CertificateFiles:
    """The server's certificate chain, private key and optional client CA bundle (PEM files)."""

    def __init__(self, cert_path: str, key_path: str, client_ca_path: str | None = None) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.client_ca_path = client_ca_path
        self._lock = threading.Lock()
        self._fingerprint = self._stat()
        self._current = self._load()  # at start-up a bad file is fatal: raise
        self.reloads = 0

    @property
    def require_client_auth(self) -> bool:
        return self.client_ca_path is not None

    def _paths(self) -> tuple[str, ...]:
        paths = (self.cert_path, self.key_path)
        return (*paths, self.client_ca_path) if self.client_ca_path is not None else paths

    def _stat(self) -> _Fingerprint:
        prints = []
        for path in self._paths():
            try:
                st = os.stat(path)  # follows symlinks: a kubelet ..data swap changes the target
            except OSError as exc:
                raise TlsConfigError(f"{path}: {exc.strerror}", (path,)) from None
            prints.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(prints)

    def _load(self) -> _Loaded:
        def read(path: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as exc:
                raise TlsConfigError(f"{path}: {exc.strerror}", (path,)) from None

        chain, key = read(self.cert_path), read(self.key_path)
        client_ca = read(self.client_ca_path) if self.client_ca_path is not None else None
        # The standard library checks what gRPC would only find out at handshake
        # time: that the files are PEM, and that the key belongs to the certificate.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(
                f"{self.cert_path} / {self.key_path}: not a PEM certificate chain and its "
                f"matching private key ({exc})",
                (self.cert_path, self.key_path),
            ) from None
        if self.client_ca_path is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_path)
            except (ssl.SSLError, OSError) as exc:
                raise TlsConfigError(
                    f"{self.client_ca_path}: not a PEM CA bundle ({exc})", (self.client_ca_path,)
                ) from None
        return _Loaded(key=key, chain=chain, client_ca=client_ca)

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        loaded = self._current
        return grpc.ssl_server_certificate_configuration(
            [(loaded.key, loaded.chain)], root_certificates=loaded.client_ca
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's callback before each handshake: a new configuration when the
        files changed and are valid, else None (keep the current one)."""
        with self._lock:
            try:
                fingerprint = self._stat()
                if fingerprint == self._fingerprint:
                    return None
                loaded = self._load()
                if self._stat() != fingerprint:
                    raise TlsConfigError("files changed while being read; trying again at the next handshake")
            except TlsConfigError as exc:
                # Mid-rotation or broken: keep serving the last good certificate.
                log.warning("tls: keeping the current certificate: %s", exc)
                return None
            except Exception:  # an exception escaping into gRPC's core would fail the handshake
                log.exception("tls: keeping the current certificate")
                return None
            self._fingerprint = fingerprint
            self._current = loaded
            self.reloads += 1
            log.info("tls: certificate files changed, reloaded", extra={"tls_reloads": self.reloads})
            return self.configuration()


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """TLS credentials that follow the files; client certificates are required
    (mTLS) when a client CA is configured."""
    return grpc.dynamic_ssl_server_credentials(
        files.configuration(), files.fetch, require_client_authentication=files.require_client_auth
    )


__all__ = ["CertificateFiles", "TlsConfigError", "server_credentials"]
