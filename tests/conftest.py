"""Fixtures for the icsssl tests: certificates, contexts and TLS versions.

Certificates are made with cryptography's x509 API once per session and
written as PEM files, which ``use_certificate_file`` reads on every
pyOpenSSL version (pyOpenSSL 23 cannot take cryptography objects).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from typing import Callable, Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

import icsssl
import support


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"icsssl: {os.path.dirname(icsssl.__file__)}",
        f"icsssl OpenSSL: {icsssl.openssl_version()}",
        f"pyOpenSSL OpenSSL: {icsssl.pyopenssl_openssl_version()}",
        f"SHARED_OPENSSL: {icsssl.SHARED_OPENSSL}",
    ]


@dataclasses.dataclass(frozen=True)
class CertFiles:
    """PEM paths of a server certificate, its key and the CA that signed
    it (``None`` for a self-signed certificate)."""

    cert_path: str
    key_path: str
    ca_path: Optional[str]


@dataclasses.dataclass(frozen=True)
class TLSVersion:
    """A protocol version as pyOpenSSL numbers and names it."""

    number: int
    name: str


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: x509.Name,
    public_key: rsa.RSAPublicKey,
    issuer: x509.Name,
    signing_key: rsa.RSAPrivateKey,
    is_ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=None), critical=True
        )
    )
    if is_ca:
        builder = builder.add_extension(
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
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(support.LOOPBACK)),
                ]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


def _write_pem(folder: str, stem: str, certificate: x509.Certificate,
               key: Optional[rsa.RSAPrivateKey]) -> tuple[str, str]:
    cert_path = os.path.join(folder, f"{stem}.crt")
    with open(cert_path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    key_path = ""
    if key is not None:
        key_path = os.path.join(folder, f"{stem}.key")
        with open(key_path, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    return cert_path, key_path


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed server certificate for localhost and 127.0.0.1."""
    folder = str(tmp_path_factory.mktemp("self-signed"))
    key = _new_key()
    name = _name("localhost")
    certificate = _certificate(name, key.public_key(), name, key, is_ca=False)
    cert_path, key_path = _write_pem(folder, "server", certificate, key)
    return CertFiles(cert_path, key_path, None)


@pytest.fixture(scope="session")
def ca_signed(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A server certificate for localhost and 127.0.0.1 signed by a test
    CA, with the CA's certificate in ``ca_path``."""
    folder = str(tmp_path_factory.mktemp("ca-signed"))
    ca_key = _new_key()
    ca_name = _name("icsssl test CA")
    ca_certificate = _certificate(
        ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True
    )
    ca_path, _ = _write_pem(folder, "ca", ca_certificate, None)
    leaf_key = _new_key()
    leaf = _certificate(
        _name("localhost"), leaf_key.public_key(), ca_name, ca_key, is_ca=False
    )
    cert_path, key_path = _write_pem(folder, "server", leaf, leaf_key)
    return CertFiles(cert_path, key_path, ca_path)


@pytest.fixture(
    params=[SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION],
    ids=["TLSv1.2", "TLSv1.3"],
)
def tls_version(request: pytest.FixtureRequest) -> TLSVersion:
    """Each of TLS 1.2 and TLS 1.3 in turn."""
    return TLSVersion(request.param, support.VERSION_NAMES[request.param])


@pytest.fixture
def server_context(self_signed: CertFiles) -> Callable[..., SSL.Context]:
    """A factory of server contexts using the self-signed certificate;
    takes ``version`` and ``ciphers``."""

    def make(version: Optional[int] = None,
             ciphers: Optional[bytes] = None) -> SSL.Context:
        return support.make_server_context(
            self_signed.cert_path, self_signed.key_path, version, ciphers
        )

    return make


@pytest.fixture(scope="session")
def s_server_log_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder for the output of ``openssl`` peers."""
    return str(tmp_path_factory.mktemp("openssl-logs"))


@pytest.fixture(scope="module")
def s_server(self_signed: CertFiles, s_server_log_dir: str):
    """An ``openssl s_server -www`` with the self-signed certificate,
    shared by a module's tests and terminated after them."""
    with support.openssl_s_server(
        self_signed.cert_path, self_signed.key_path, s_server_log_dir, "-www"
    ) as server:
        yield server
