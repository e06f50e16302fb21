"""``icsssl probe HOST[:PORT]``: one client handshake, reported."""

from __future__ import annotations

import argparse
import datetime
import os
import ipaddress
import json
import socket
import sys
from typing import Any, Optional

from cryptography import x509
from OpenSSL import SSL as _SSL

from icsssl import _net
from icsssl.connection import Connection

DEFAULT_PORT = 443


def parse_target(target: str) -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (``[IPv6]:PORT`` for IPv6) into host and port.

    :raises ValueError: naming *target* if it cannot be split.
    """
    host, port_text = target, ""
    if target.startswith("["):
        closing = target.find("]")
        if closing < 0:
            raise ValueError(f"missing ']' in {target!r}; use [::1]:443")
        host, rest = target[1:closing], target[closing + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(
                f"unexpected {rest!r} after ']' in {target!r}; use [::1]:443"
            )
        port_text = rest[1:]
    elif target.count(":") == 1:
        host, port_text = target.split(":")
    elif target.count(":") > 1:
        # A bare IPv6 address has no room for a port.
        if not _is_ip_address(target):
            raise ValueError(
                f"invalid target {target!r}: write an IPv6 address with a "
                "port in brackets, e.g. [::1]:443"
            )
    if not host:
        raise ValueError(f"missing host in {target!r}; use HOST[:PORT]")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"invalid port {port_text!r} in {target!r}; use 1 to 65535"
        )
    return host, int(port_text)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _context(arguments: argparse.Namespace) -> _SSL.Context:
    context = _SSL.Context(_SSL.TLS_METHOD)
    if arguments.tls1_2:
        context.set_min_proto_version(_SSL.TLS1_2_VERSION)
        context.set_max_proto_version(_SSL.TLS1_2_VERSION)
    if arguments.tls1_3:
        context.set_min_proto_version(_SSL.TLS1_3_VERSION)
        context.set_max_proto_version(_SSL.TLS1_3_VERSION)
    if arguments.cipher:
        try:
            context.set_cipher_list(arguments.cipher.encode("ascii"))
        except (_SSL.Error, UnicodeEncodeError):
            raise ValueError(
                f"invalid --cipher {arguments.cipher!r}: OpenSSL matched no "
                "cipher; `openssl ciphers -v ALL` lists the names"
            ) from None
    if not arguments.insecure:
        context.set_verify(_SSL.VERIFY_PEER)
        if arguments.cafile:
            if not os.path.isfile(arguments.cafile):
                raise ValueError(
                    f"--cafile {arguments.cafile!r}: file not found"
                )
            try:
                context.load_verify_locations(arguments.cafile)
            except _SSL.Error:
                raise ValueError(
                    f"cannot load --cafile {arguments.cafile!r}: it must be "
                    "a readable file of PEM certificates"
                ) from None
        else:
            context.set_default_verify_paths()
    return context


def _peer_certificate(connection: Connection) -> Optional[x509.Certificate]:
    try:
        return connection.get_peer_certificate(as_cryptography=True)
    except TypeError:
        # pyOpenSSL before 24.3 returns its own X509 only.
        certificate = connection.get_peer_certificate()
        return None if certificate is None else certificate.to_cryptography()


def _not_after(certificate: x509.Certificate) -> datetime.datetime:
    value = getattr(certificate, "not_valid_after_utc", None)
    if value is None:
        value = certificate.not_valid_after.replace(
            tzinfo=datetime.timezone.utc
        )
    return value


def _result(
    host: str,
    port: int,
    server_name: Optional[str],
    connection: Connection,
    verbose: bool,
) -> dict[str, Any]:
    report = connection.handshake_report
    result: dict[str, Any] = {
        "host": host,
        "port": port,
        "server_name": server_name,
    }
    if report is not None:
        result.update(report.as_dict())
        if verbose:
            result.update(connection.handshake_details)
            result["server_name"] = server_name
    certificate = _peer_certificate(connection)
    if certificate is not None:
        result["peer_subject"] = certificate.subject.rfc4514_string()
        result["peer_issuer"] = certificate.issuer.rfc4514_string()
        result["peer_not_after"] = _not_after(certificate).isoformat()
    return result


_VERBOSE_ROWS = (
    ("state", "OpenSSL state"),
    ("verify_result", "verify result"),
    ("verify_text", "verify text"),
    ("alpn", "ALPN"),
    ("alpn_offered", "ALPN offered"),
    ("group", "group"),
    ("peer_signature", "peer signature"),
    ("peer_key", "peer key"),
    ("peer_not_before", "valid from"),
)


def _print_text(result: dict[str, Any], verbose: bool) -> None:
    target = f"{result['host']}:{result['port']}"
    if result["server_name"]:
        target += f" (SNI {result['server_name']})"
    rows = [("target", target), ("result", result.get("message", ""))]
    rows.append(("ErrCode", str(result.get("err_code", ""))))
    rows.append(("SslHandshakeErr", f"0x{result.get('error', 0):08X}"))
    if result.get("kind") and result["kind"] != "ICSSSL_OK":
        rows.append(("kind", result["kind"]))
    if result.get("cipher_description"):
        rows.append(("cipher", result["cipher_description"]))
    for key, label in (
        ("peer_subject", "subject"),
        ("peer_issuer", "issuer"),
        ("peer_not_after", "expires"),
    ):
        if key in result:
            rows.append((label, result[key]))
    if verbose:
        for key, label in _VERBOSE_ROWS:
            if result.get(key) not in (None, "", []):
                rows.append((label, str(result[key])))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def run(arguments: argparse.Namespace) -> int:
    """Run the probe; return 0 if the handshake succeeded, else 1."""
    try:
        if not arguments.timeout > 0:
            raise ValueError(
                f"invalid --timeout {arguments.timeout!r}: use a number of "
                "seconds above 0"
            )
        host, port = parse_target(arguments.target)
        context = _context(arguments)
    except ValueError as error:
        print(f"icsssl probe: {error}", file=sys.stderr)
        return 2
    server_name = arguments.servername
    if server_name is None and not _is_ip_address(host):
        server_name = host
    try:
        sock = socket.create_connection((host, port), arguments.timeout)
    except OSError as error:
        print(
            f"icsssl probe: cannot connect to {host} port {port}: {error}",
            file=sys.stderr,
        )
        return 1
    with sock:
        sock.setblocking(False)
        connection = Connection(context, sock)
        connection.set_connect_state()
        if server_name:
            connection.set_tlsext_host_name(server_name.encode("idna"))
        if not arguments.insecure:
            connection.set_verify_hostname(server_name or host)
        try:
            _net.drive_handshake(connection, arguments.timeout)
        except _SSL.Error:
            pass
        except _net.PeerTimeout:
            connection.handshake_timed_out(arguments.timeout)
        result = _result(
            host, port, server_name, connection, arguments.verbose
        )
        if connection.handshake_done and connection.ErrCode == 0:
            try:
                connection.shutdown()
            except _SSL.Error:
                pass
    if arguments.json:
        print(json.dumps(result, indent=2))
    else:
        _print_text(result, arguments.verbose)
    succeeded = connection.handshake_done and connection.ErrCode == 0
    return 0 if succeeded else 1


def add_parser(commands: Any) -> None:
    """Add the ``probe`` command to the ``icsssl`` parser."""
    parser = commands.add_parser(
        "probe",
        help="run one client handshake and print its report",
        description=(
            "Connect to HOST[:PORT] (port 443 by default), run a TLS "
            "handshake with SNI and print the ICS report, the cipher "
            "description and the server certificate.  Exits 0 on success, "
            "1 on failure, 2 on invalid arguments."
        ),
    )
    parser.add_argument("target", metavar="HOST[:PORT]")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server certificate",
    )
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        help="trust the PEM certificates in FILE instead of the system store",
    )
    versions = parser.add_mutually_exclusive_group()
    versions.add_argument(
        "--tls1_2", action="store_true", help="offer TLS 1.2 only"
    )
    versions.add_argument(
        "--tls1_3", action="store_true", help="offer TLS 1.3 only"
    )
    parser.add_argument(
        "--cipher",
        metavar="LIST",
        help="OpenSSL cipher list for TLS 1.2 and below",
    )
    parser.add_argument(
        "--servername",
        metavar="NAME",
        help="SNI name and name to verify (default: HOST unless an IP)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="limit for connecting and for the handshake (default 10)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="add the OpenSSL state, verify result, ALPN, SNI, group and "
        "the peer's signature algorithm and key",
    )
    parser.set_defaults(handler=run)
