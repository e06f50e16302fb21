"""Throw-away RSA-2048 certificates for the benchmarks.

A CA signs a server certificate for ``localhost`` and 127.0.0.1.  Every
contender's server loads the same PEM files and every client trusts the
same CA, so all contenders verify the same chain.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_BITS = 2048


@dataclasses.dataclass(frozen=True)
class CertificateFiles:
    """Paths of the PEM files that the contexts load."""

    ca_certificate: str
    server_certificate: str
    server_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def write_certificates(directory: Path) -> CertificateFiles:
    """Generate a CA and a server certificate it signs, both RSA-2048,
    valid for one day, and write them as PEM files into *directory*."""
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=1)

    ca_key = _new_key()
    ca_name = _name("icsssl benchmark CA")
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(ca_key, hashes.SHA256())
    )

    server_key = _new_key()
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = CertificateFiles(
        ca_certificate=str(directory / "ca.pem"),
        server_certificate=str(directory / "server.pem"),
        server_key=str(directory / "server-key.pem"),
    )
    pem = serialization.Encoding.PEM
    Path(files.ca_certificate).write_bytes(ca_certificate.public_bytes(pem))
    Path(files.server_certificate).write_bytes(
        server_certificate.public_bytes(pem)
    )
    Path(files.server_key).write_bytes(
        server_key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
