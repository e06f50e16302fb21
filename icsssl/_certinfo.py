"""Facts about certificates, read with cryptography's x509 API."""

from __future__ import annotations

import datetime
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    rsa,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from icsssl.diagnosis import PeerCertificate


def _utc(certificate: x509.Certificate, name: str) -> datetime.datetime:
    value = getattr(certificate, f"{name}_utc", None)
    if value is None:  # cryptography before 42
        value = getattr(certificate, name).replace(
            tzinfo=datetime.timezone.utc
        )
    return value  # type: ignore[no-any-return]


def key_description(certificate: x509.Certificate) -> str:
    """Return ``RSA 2048``, ``EC secp256r1``, ``Ed25519`` or the like."""
    try:
        key = certificate.public_key()
    except Exception:  # noqa: BLE001 - an unsupported key type
        return "unknown key"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _extension(
    certificate: x509.Certificate, oid: Any
) -> Optional[x509.Extension[Any]]:
    try:
        return certificate.extensions.get_extension_for_oid(oid)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _strict_problems(
    certificate: x509.Certificate, is_ca: bool, self_signed: bool
) -> tuple[int, ...]:
    """Return the verify codes 85-92 that this certificate would raise
    under X509_V_FLAG_X509_STRICT, as far as its own fields show."""
    problems = []
    authority_key = _extension(
        certificate, ExtensionOID.AUTHORITY_KEY_IDENTIFIER
    )
    subject_key = _extension(certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    alternative = _extension(
        certificate, ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    )
    constraints = _extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    usage = _extension(certificate, ExtensionOID.KEY_USAGE)
    if authority_key is None and not self_signed:
        problems.append(85)
    if subject_key is None and is_ca:
        problems.append(86)
    if alternative is not None and len(alternative.value) == 0:
        problems.append(87)
    if (
        len(certificate.subject) == 0
        and alternative is not None
        and not alternative.critical
    ):
        problems.append(88)
    if is_ca and constraints is not None and not constraints.critical:
        problems.append(89)
    if authority_key is not None and authority_key.critical:
        problems.append(90)
    if subject_key is not None and subject_key.critical:
        problems.append(91)
    if is_ca and usage is None:
        problems.append(92)
    return tuple(problems)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def unparsable(error: BaseException) -> PeerCertificate:
    """Return a placeholder for a certificate OpenSSL accepted but
    cryptography cannot read (a negative serial, an unknown version)."""
    return PeerCertificate(
        subject=f"(unreadable certificate: {type(error).__name__}: {error})",
        issuer="",
        not_before=_EPOCH,
        not_after=_EPOCH,
    )


def describe_any(certificate: Any) -> PeerCertificate:
    """Describe a pyOpenSSL ``X509`` or a cryptography certificate.  A
    certificate that cannot be parsed gets :func:`unparsable`'s
    placeholder instead of an exception."""
    try:
        converted = getattr(certificate, "to_cryptography", None)
        value = converted() if converted is not None else certificate
        return describe(value)
    except Exception as error:  # noqa: BLE001 - any parse failure
        return unparsable(error)


def describe(certificate: x509.Certificate) -> PeerCertificate:
    """Return the facts a diagnosis uses about *certificate*."""
    alternative = _extension(
        certificate, ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    )
    dns_names: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    if alternative is not None:
        dns_names = tuple(alternative.value.get_values_for_type(x509.DNSName))
        addresses = tuple(
            str(address)
            for address in alternative.value.get_values_for_type(
                x509.IPAddress
            )
        )
    common_names = certificate.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    constraints = _extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    is_ca = bool(constraints is not None and constraints.value.ca)
    self_signed = certificate.subject == certificate.issuer
    try:
        digest = certificate.signature_hash_algorithm
        signature_hash = "" if digest is None else digest.name
    except Exception:  # noqa: BLE001 - an algorithm cryptography lacks
        signature_hash = ""
    return PeerCertificate(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_before=_utc(certificate, "not_valid_before"),
        not_after=_utc(certificate, "not_valid_after"),
        dns_names=dns_names,
        ip_addresses=addresses,
        has_subject_alt_name=alternative is not None,
        common_name=str(common_names[0].value) if common_names else "",
        self_signed=self_signed,
        key_description=key_description(certificate),
        signature_hash=signature_hash,
        missing_extensions=_strict_problems(certificate, is_ca, self_signed),
    )


def own_certificate_problems(
    certificate: x509.Certificate, role: str, now: datetime.datetime
) -> str:
    """Return what in this side's own *certificate* a peer may reject, as
    one phrase, or ``""``.

    Checks the dates, the key usage and extended key usage for *role*
    (``clientAuth`` for a client, ``serverAuth`` for a server), the key
    size and the signature digest.
    """
    subject = certificate.subject.rfc4514_string()
    problems = []
    not_after = _utc(certificate, "not_valid_after")
    not_before = _utc(certificate, "not_valid_before")
    if not_after < now:
        problems.append(f"it expired on {not_after:%Y-%m-%d %H:%M:%S} UTC")
    if not_before > now:
        problems.append(
            f"it is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"
        )
    purpose = "clientAuth" if role == "client" else "serverAuth"
    wanted = (
        ExtendedKeyUsageOID.CLIENT_AUTH
        if role == "client"
        else ExtendedKeyUsageOID.SERVER_AUTH
    )
    extended = _extension(certificate, ExtensionOID.EXTENDED_KEY_USAGE)
    if extended is not None and wanted not in list(extended.value):
        names = ", ".join(
            getattr(oid, "_name", oid.dotted_string) for oid in extended.value
        )
        problems.append(
            f"its extendedKeyUsage ({names}) does not include {purpose}"
        )
    usage = _extension(certificate, ExtensionOID.KEY_USAGE)
    if usage is not None and not usage.value.digital_signature:
        problems.append("its keyUsage lacks digitalSignature")
    problems += _weaknesses(certificate)
    if not problems:
        return ""
    return f"this side's certificate ({subject}): " + "; ".join(problems)


def _weaknesses(certificate: x509.Certificate) -> list[str]:
    """Return what makes *certificate* too weak for OpenSSL's default
    security level: an RSA or DSA key under 2048 bits, a SHA-1 or MD5
    signature."""
    found = []
    key = key_description(certificate)
    kind, _, size = key.partition(" ")
    if kind in ("RSA", "DSA") and size.isdigit() and int(size) < 2048:
        found.append(f"its key ({key}) is smaller than 2048 bits")
    try:
        digest = certificate.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an algorithm cryptography lacks
        digest = None
    if digest is not None and digest.name in ("sha1", "md5"):
        found.append(f"it is signed with {digest.name.upper()}")
    return found


def weak_issuer_problems(certificate: x509.Certificate) -> str:
    """Return why a CA certificate this side sends is too weak, or ``""``."""
    problems = _weaknesses(certificate)
    if not problems:
        return ""
    subject = certificate.subject.rfc4514_string()
    return f"the CA certificate {subject} in this side's chain: " + "; ".join(
        problems
    )
