"""icsssl.Context: certificate and key files checked where they are loaded."""

from __future__ import annotations

import datetime
import pathlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL as PlainSSL

import icsssl
import support
from icsssl import SSL, context


def _key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loader.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _write_certificate(
    path: pathlib.Path, certificate: x509.Certificate
) -> str:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _write_key(
    path: pathlib.Path, key: rsa.RSAPrivateKey, passphrase: bytes | None = None
) -> str:
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            encryption,
        )
    )
    return str(path)


def _pyopenssl_openssl_major() -> int:
    return PlainSSL.OPENSSL_VERSION_NUMBER >> 28


def test_dropin_context_is_icsssl_context() -> None:
    assert SSL.Context is icsssl.Context
    assert issubclass(SSL.Context, PlainSSL.Context)
    assert issubclass(SSL.CertificateLoadError, PlainSSL.Error)


def test_matching_pair_loads(tmp_path: pathlib.Path) -> None:
    key = _key()
    certificate = _write_certificate(tmp_path / "c.pem", _self_signed(key))
    key_path = _write_key(tmp_path / "k.pem", key)
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.use_certificate_file(certificate)
    ctx.use_privatekey_file(key_path)
    ctx.check_privatekey()


def test_encrypted_key_without_passphrase(tmp_path: pathlib.Path) -> None:
    key_path = _write_key(tmp_path / "k.pem", _key(), b"secret")
    ctx = SSL.Context(SSL.TLS_METHOD)
    with pytest.raises(SSL.Error) as caught:
        ctx.use_privatekey_file(key_path)
    error = caught.value
    assert isinstance(error, context.CertificateLoadError)
    assert error.kind == context.KEY_ENCRYPTED
    support.record_kind(error.kind, str(error))
    assert error.path == key_path
    assert key_path in str(error)


def test_encrypted_key_with_passphrase_loads(tmp_path: pathlib.Path) -> None:
    key = _key()
    certificate = _write_certificate(tmp_path / "c.pem", _self_signed(key))
    key_path = _write_key(tmp_path / "k.pem", key, b"secret")
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_passwd_cb(lambda *args: b"secret")
    ctx.use_certificate_file(certificate)
    ctx.use_privatekey_file(key_path)
    ctx.check_privatekey()


@pytest.mark.parametrize("certificate_first", [True, False])
def test_key_not_matching_certificate(
    tmp_path: pathlib.Path, certificate_first: bool
) -> None:
    certificate = _write_certificate(tmp_path / "c.pem", _self_signed(_key()))
    key_path = _write_key(tmp_path / "k.pem", _key())
    ctx = SSL.Context(SSL.TLS_METHOD)
    with pytest.raises(context.CertificateLoadError) as caught:
        if certificate_first:
            ctx.use_certificate_file(certificate)
            ctx.use_privatekey_file(key_path)
        else:
            ctx.use_privatekey_file(key_path)
            ctx.use_certificate_file(certificate)
    assert caught.value.kind == context.KEY_MISMATCH
    support.record_kind(caught.value.kind, str(caught.value))
    assert key_path in str(caught.value)
    assert certificate in str(caught.value)


def test_missing_file_is_named(tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "absent.pem")
    ctx = SSL.Context(SSL.TLS_METHOD)
    with pytest.raises(context.CertificateLoadError) as caught:
        ctx.use_certificate_chain_file(missing)
    assert caught.value.kind == context.UNREADABLE_FILE
    support.record_kind(caught.value.kind, str(caught.value))
    assert missing in str(caught.value)


def _openssl(*arguments: str) -> None:
    subprocess.run(
        ["openssl", *arguments], check=True, capture_output=True, timeout=60
    )


def test_sha1_certificate_at_load(tmp_path: pathlib.Path) -> None:
    # cryptography 50 no longer signs with SHA-1; the openssl binary does.
    # OpenSSL exempts self-signed certificates from the digest check, so
    # the SHA-1 signature comes from a CA.
    ca_key, ca_cert = str(tmp_path / "ca.key"), str(tmp_path / "ca.pem")
    key, request = str(tmp_path / "k.pem"), str(tmp_path / "req.pem")
    certificate = str(tmp_path / "c.pem")
    _openssl(
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        ca_key,
        "-out",
        ca_cert,
        "-subj",
        "/CN=SHA-1 test CA",
        "-days",
        "1",
    )
    _openssl(
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        key,
        "-out",
        request,
        "-subj",
        "/CN=sha1.test",
    )
    _openssl(
        "x509",
        "-req",
        "-sha1",
        "-in",
        request,
        "-CA",
        ca_cert,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        certificate,
        "-days",
        "1",
    )
    ctx = SSL.Context(SSL.TLS_METHOD)
    if _pyopenssl_openssl_major() >= 4:
        # OpenSSL 4 accepts a SHA-1-signed certificate of its own here.
        ctx.use_certificate_file(certificate)
        return
    with pytest.raises(context.CertificateLoadError) as caught:
        ctx.use_certificate_file(certificate)
    assert caught.value.kind == context.LOCAL_DIGEST_TOO_WEAK
    support.record_kind(caught.value.kind, str(caught.value))
    assert certificate in str(caught.value)
    assert "SHA1" in str(caught.value)


def test_small_key_at_security_level_two(tmp_path: pathlib.Path) -> None:
    certificate = _write_certificate(
        tmp_path / "c.pem", _self_signed(_key(1024))
    )
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=2")
    with pytest.raises(context.CertificateLoadError) as caught:
        ctx.use_certificate_file(certificate)
    assert caught.value.kind == context.LOCAL_KEY_TOO_SMALL
    support.record_kind(caught.value.kind, str(caught.value))
    assert "RSA 1024" in str(caught.value)


def test_missing_ca_file_is_named(tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    ctx = SSL.Context(SSL.TLS_METHOD)
    with pytest.raises(context.CertificateLoadError) as caught:
        ctx.load_verify_locations(missing)
    assert caught.value.kind == context.UNREADABLE_FILE
    assert missing in str(caught.value)


def test_ca_file_loads(tmp_path: pathlib.Path) -> None:
    certificate = _write_certificate(tmp_path / "ca.pem", _self_signed(_key()))
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.load_verify_locations(certificate)
    connection = icsssl.Connection(ctx, None)
    assert icsssl._pyopenssl.trusted_root_count(connection) == 1


def test_crypto_importable_beside_ssl() -> None:
    from OpenSSL import crypto as plain_crypto

    from icsssl import crypto

    assert crypto is plain_crypto
