"""``icsssl.Context``: pyOpenSSL's Context that names bad certificate files.

pyOpenSSL raises ``OpenSSL.SSL.Error`` with OpenSSL's strings when a
certificate or key file cannot be used, and for an encrypted key without a
passphrase callback OpenSSL may even prompt on the terminal.  This Context
reads the files with cryptography first and raises
:class:`CertificateLoadError`, a subclass of ``OpenSSL.SSL.Error``, that
names the file, the cause and a stable kind.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL as _SSL

from icsssl.catalogue import register

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

KEY_MISMATCH = register(
    "ICSSSL_KEY_CERT_MISMATCH",
    "The private key does not belong to the certificate.",
    "Load the key that was made with the certificate's request.",
)
KEY_ENCRYPTED = register(
    "ICSSSL_KEY_ENCRYPTED",
    "The private key file is encrypted and no passphrase was given.",
    "Call set_passwd_cb() before loading it, or decrypt the key file.",
)
LOCAL_DIGEST_TOO_WEAK = register(
    "ICSSSL_LOCAL_CERT_DIGEST_TOO_WEAK",
    "This side's certificate is signed with SHA-1 or MD5, which OpenSSL "
    "3.0 rejects at security level 1 and above when loading it.",
    "Reissue the certificate with SHA-256, or lower the security level.",
)
LOCAL_KEY_TOO_SMALL = register(
    "ICSSSL_LOCAL_KEY_TOO_SMALL",
    "This side's certificate has a key too small for the security level.",
    "Reissue the certificate with RSA 2048 or larger, or an EC key.",
)
UNREADABLE_FILE = register(
    "ICSSSL_UNREADABLE_FILE",
    "A certificate or key file is missing, unreadable or not PEM/DER.",
    "Check the path and the file's format.",
)


class CertificateLoadError(_SSL.Error):
    """A certificate or key file of this side cannot be used.

    ``args`` are those of pyOpenSSL's error where OpenSSL raised one, so
    ``except SSL.Error`` clauses keep working.
    """

    def __init__(self, kind: str, message: str, path: str, *args: Any) -> None:
        super().__init__(*args)
        self.kind = kind
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message


def _show(path: _Path) -> str:
    return os.fsdecode(path)


def _read(path: _Path, what: str) -> bytes:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            f"the {what} file must be a path (str, bytes or os.PathLike), "
            f"got {type(path).__name__} {path!r}"
        )
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except ValueError as error:  # an embedded NUL byte
        raise CertificateLoadError(
            UNREADABLE_FILE,
            f"invalid {what} file path {path!r}: {error}",
            repr(path),
        ) from error
    except OSError as error:
        raise CertificateLoadError(
            UNREADABLE_FILE,
            f"cannot read the {what} file {_show(path)!r}: {error.strerror}",
            _show(path),
        ) from error


_PEM_END = b"-----END CERTIFICATE-----"


def _certificates(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        # One block at a time: load_pem_x509_certificates needs
        # cryptography 39, and Debian 12 ships 38.
        found = []
        for block in data.split(_PEM_END)[:-1]:
            try:
                found.append(x509.load_pem_x509_certificate(block + _PEM_END))
            except (ValueError, x509.InvalidVersion):
                return found
        return found
    try:
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, x509.InvalidVersion):
        return []


def _is_encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or (
        b"Proc-Type: 4,ENCRYPTED" in data
    )


def _public_bytes(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )


class Context(_SSL.Context):
    """pyOpenSSL's :class:`OpenSSL.SSL.Context`, whose file loaders raise
    :class:`CertificateLoadError` naming the file and the cause."""

    def __init__(self, method: int) -> None:
        super().__init__(method)
        self._ics_certificate: Optional[x509.Certificate] = None
        self._ics_certificate_path = ""
        self._ics_key_public: Optional[bytes] = None
        self._ics_key_path = ""
        self._ics_has_passphrase = False
        self._ics_extra_chain: list[x509.Certificate] = []
        self._ics_loaded_chain: list[x509.Certificate] = []

    def loaded_chain(self) -> list[x509.Certificate]:
        """Return the certificates this side presents, leaf first, as far
        as this context loaded them (files and add_extra_chain_cert)."""
        leaf = [] if self._ics_certificate is None else [self._ics_certificate]
        return leaf + self._ics_loaded_chain[1:] + self._ics_extra_chain

    def add_extra_chain_cert(self, certx509: Any) -> None:
        """Add a certificate to the chain sent, as pyOpenSSL does."""
        super().add_extra_chain_cert(certx509)
        converted = getattr(certx509, "to_cryptography", None)
        certificate = converted() if converted is not None else certx509
        if isinstance(certificate, x509.Certificate):
            self._ics_extra_chain.append(certificate)

    def set_passwd_cb(self, callback: Any, userdata: Any = None) -> None:
        """Set the passphrase callback, as pyOpenSSL does."""
        super().set_passwd_cb(callback, userdata)
        self._ics_has_passphrase = callback is not None

    def load_verify_locations(
        self, cafile: Optional[_Path], capath: Optional[_Path] = None
    ) -> None:
        """Trust the CA certificates in *cafile* and/or the hashed
        directory *capath*, as pyOpenSSL does, naming a missing one."""
        if cafile is not None:
            _read(cafile, "CA certificates")
        if capath is not None and not os.path.isdir(capath):
            raise CertificateLoadError(
                UNREADABLE_FILE,
                f"the CA directory {_show(capath)!r} does not exist",
                _show(capath),
            )
        try:
            super().load_verify_locations(cafile, capath)
        except _SSL.Error as error:
            where = cafile if cafile is not None else capath
            shown = "" if where is None else _show(where)
            raise CertificateLoadError(
                UNREADABLE_FILE,
                f"OpenSSL cannot load CA certificates from {shown!r}: it "
                "must hold PEM certificates",
                shown,
                *error.args,
            ) from error

    def use_certificate_chain_file(self, certfile: _Path) -> None:
        """Load a PEM chain, leaf first, as pyOpenSSL does."""
        self._load_certificate(
            certfile, super().use_certificate_chain_file, certfile
        )

    def use_certificate_file(
        self, certfile: _Path, filetype: int = _SSL.FILETYPE_PEM
    ) -> None:
        """Load this side's certificate, as pyOpenSSL does."""
        self._load_certificate(
            certfile, super().use_certificate_file, certfile, filetype
        )

    def use_privatekey_file(
        self, keyfile: _Path, filetype: int = _SSL.FILETYPE_PEM
    ) -> None:
        """Load this side's private key, as pyOpenSSL does, after checking
        that it is readable, not encrypted without a passphrase callback,
        and matches a certificate loaded before it."""
        data = _read(keyfile, "private key")
        if _is_encrypted_pem(data) and not self._ics_has_passphrase:
            raise CertificateLoadError(
                KEY_ENCRYPTED,
                f"the private key file {_show(keyfile)!r} is encrypted and "
                "no passphrase callback is set: call set_passwd_cb() first",
                _show(keyfile),
            )
        public = self._key_public_bytes(data)
        if public is not None:
            self._check_pair(public, _show(keyfile))
        try:
            super().use_privatekey_file(keyfile, filetype)
        except _SSL.Error as error:
            raise CertificateLoadError(
                UNREADABLE_FILE,
                f"OpenSSL cannot use the private key file {_show(keyfile)!r}",
                _show(keyfile),
                *error.args,
            ) from error
        self._ics_key_public = public
        self._ics_key_path = _show(keyfile)

    @staticmethod
    def _key_public_bytes(data: bytes) -> Optional[bytes]:
        try:
            if b"-----BEGIN" in data:
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError):
            return None  # Encrypted with a callback, or a format OpenSSL
            # alone reads; OpenSSL's own check still runs.
        except Exception:  # noqa: BLE001 - unsupported key types
            return None
        return _public_bytes(key.public_key())

    def _check_pair(self, key_public: bytes, key_path: str) -> None:
        certificate = self._ics_certificate
        if certificate is None:
            return
        if _public_bytes(certificate.public_key()) != key_public:
            raise CertificateLoadError(
                KEY_MISMATCH,
                f"the private key {key_path!r} does not match the "
                f"certificate {self._ics_certificate_path!r} "
                f"({certificate.subject.rfc4514_string()})",
                key_path,
            )

    def _load_certificate(self, path: _Path, load: Any, *args: Any) -> None:
        data = _read(path, "certificate")
        found = _certificates(data)
        leaf = found[0] if found else None
        try:
            load(*args)
        except _SSL.Error as error:
            raise self._certificate_error(path, leaf, error) from error
        self._ics_certificate = leaf
        self._ics_loaded_chain = found
        self._ics_certificate_path = _show(path)
        if leaf is not None and self._ics_key_public is not None:
            self._check_pair(self._ics_key_public, self._ics_key_path)

    @staticmethod
    def _certificate_error(
        path: _Path, leaf: Optional[x509.Certificate], error: _SSL.Error
    ) -> CertificateLoadError:
        shown = _show(path)
        if leaf is None:
            return CertificateLoadError(
                UNREADABLE_FILE,
                f"the certificate file {shown!r} holds no PEM or DER "
                "certificate",
                shown,
                *error.args,
            )
        from icsssl import _certinfo

        key = _certinfo.key_description(leaf)
        kind, _, size = key.partition(" ")
        if kind in ("RSA", "DSA") and size.isdigit() and int(size) < 2048:
            return CertificateLoadError(
                LOCAL_KEY_TOO_SMALL,
                f"the certificate {shown!r} ({leaf.subject.rfc4514_string()}) "
                f"has a {key} key, too small for this context's security "
                "level: reissue it with RSA 2048 or an EC key",
                shown,
                *error.args,
            )
        digest = leaf.signature_hash_algorithm
        if digest is not None and digest.name in ("sha1", "md5"):
            return CertificateLoadError(
                LOCAL_DIGEST_TOO_WEAK,
                f"the certificate {shown!r} ({leaf.subject.rfc4514_string()}) "
                f"is signed with {digest.name.upper()}, too weak for this "
                "context's security level: reissue it with SHA-256",
                shown,
                *error.args,
            )
        return CertificateLoadError(
            UNREADABLE_FILE,
            f"OpenSSL cannot use the certificate {shown!r} "
            f"({leaf.subject.rfc4514_string()})",
            shown,
            *error.args,
        )
