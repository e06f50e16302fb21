"""The icsssl command line, run as a user runs it, against real peers."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from typing import Iterator

import pytest

import icsssl
import support
from support import IO_TIMEOUT, LOOPBACK

# Run from a folder outside the checkout, so "python -m icsssl" imports
# the installed package and not the unbuilt source tree.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(icsssl.__file__))


def run_icsssl(*arguments: str, timeout: float = IO_TIMEOUT * 6):
    return subprocess.run(
        [sys.executable, "-m", "icsssl", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PACKAGE_PARENT,
        check=False,
    )


class _GreetingServer:
    """A plain TCP server that sends *greeting* to each client, then waits
    for the client to close."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        with client:
            client.settimeout(IO_TIMEOUT)
            client.sendall(self.greeting)
            try:
                while client.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(IO_TIMEOUT)


@pytest.fixture
def http_port() -> Iterator[int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(IO_TIMEOUT)


def test_demo_shows_every_message() -> None:
    completed = run_icsssl("demo")
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert re.search(r"SSL Connected OK with TLSv1\.3, cipher TLS_", output)
    assert (
        "SSL Connected OK with TLSv1.2, cipher AES128-GCM-SHA256, key "
        "exchange RSA, encryption AESGCM(128), message authentication AEAD"
    ) in output
    assert "cipher ECDHE-RSA-AES128-GCM-SHA256, key exchange ECDH" in output
    for message in (
        "Error, connection closed unexpectedly",
        "Error, HTTP request, no SSL handshake",
        "Error, HTTPS proxy request, no SSL handshake",
        "Error, wrong SSL version",
    ):
        assert message in output
    # The "anything else" row: OpenSSL's own string.
    assert re.search(r"error:0A[0-9A-F]{6}:SSL routines::", output)
    assert "SslHandshakeErr 0x0A00009C" in output
    assert "SslHandshakeErr 0x0A00009B" in output
    assert "SslHandshakeErr 0x0A00010B" in output


def test_probe_succeeds_against_s_server(self_signed, s_server_log_dir):
    with support.openssl_s_server(
        self_signed.cert_path, self_signed.key_path, s_server_log_dir, "-www"
    ) as server:
        completed = run_icsssl(
            "probe",
            f"{LOOPBACK}:{server.port}",
            "--cafile",
            self_signed.cert_path,
            "--servername",
            "localhost",
            "--json",
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)
    assert result["message"].startswith("SSL Connected OK with TLSv1.3")
    assert result["err_code"] == 0
    assert result["peer_subject"] == "CN=localhost"


def test_probe_rejects_untrusted_certificate(self_signed, s_server_log_dir):
    with support.openssl_s_server(
        self_signed.cert_path, self_signed.key_path, s_server_log_dir, "-www"
    ) as server:
        completed = run_icsssl(
            "probe", f"{LOOPBACK}:{server.port}", "--verbose", "--json"
        )
    assert completed.returncode == 1
    result = json.loads(completed.stdout)
    assert result["kind"] in (
        "ICSSSL_CERT_SELF_SIGNED",
        "ICSSSL_CERT_NO_TRUSTED_ROOTS",
    )
    assert result["verify_result"] == 18 or result["kind"].endswith("ROOTS")


def test_probe_http_server_wrong_version(http_port: int) -> None:
    completed = run_icsssl("probe", f"{LOOPBACK}:{http_port}", "--insecure")
    assert completed.returncode == 1
    assert "Error, wrong SSL version" in completed.stdout
    assert "plain HTTP" in completed.stdout


def test_probe_smtp_greeting() -> None:
    greeting = b"220 mail.icsssl.test ESMTP ready\r\n"
    server = _GreetingServer(greeting)
    try:
        completed = run_icsssl(
            "probe", f"{LOOPBACK}:{server.port}", "--insecure", "--json"
        )
    finally:
        server.close()
    assert completed.returncode == 1
    result = json.loads(completed.stdout)
    assert result["kind"] == "ICSSSL_SMTP_SERVER"
    assert result["message"].startswith("Error, wrong SSL version: ")
    # OpenSSL may have consumed the first five bytes as a record header
    # before icsssl saw them; the rest of the line is always shown.
    assert greeting[5:].decode().strip() in result["message"]


def test_probe_tls12_client_to_tls13_server(self_signed, s_server_log_dir):
    with support.openssl_s_server(
        self_signed.cert_path,
        self_signed.key_path,
        s_server_log_dir,
        "-www",
        "-tls1_3",
    ) as server:
        completed = run_icsssl(
            "probe",
            f"{LOOPBACK}:{server.port}",
            "--insecure",
            "--tls1_2",
            "--json",
        )
    assert completed.returncode == 1
    result = json.loads(completed.stdout)
    assert result["kind"] == "ICSSSL_PROTOCOL_VERSION_REJECTED"
    assert "TLSv1.2" in result["message"]


@pytest.mark.parametrize(
    "arguments",
    [
        ["probe", "localhost:99999"],
        ["probe", "localhost:http"],
        ["probe", "[::1"],
        ["probe", "127.0.0.1:443", "--timeout", "0"],
        ["probe", "127.0.0.1:443", "--cipher", "NO-SUCH-CIPHER"],
        ["serve", "--cert", "only-cert.pem"],
        ["serve", "--port", "70000"],
        ["decode", "not-hex"],
    ],
)
def test_invalid_arguments_exit_2(arguments: list[str]) -> None:
    completed = run_icsssl(*arguments)
    assert completed.returncode == 2
    assert completed.stderr.strip()
    assert "Traceback" not in completed.stderr


def _start_serve(*extra: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "icsssl", "serve", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PACKAGE_PARENT,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"https://127\.0\.0\.1:(\d+)/", first)
    if match is None:
        support.stop_process(process)
        pytest.fail(f"icsssl serve did not start: {first!r}")
    return process, int(match.group(1))


def test_serve_shows_each_client_its_report() -> None:
    process, port = _start_serve("--max-clients", "2", "--timeout", "10")
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection((LOOPBACK, port), IO_TIMEOUT) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                page = b""
                while len(page) < 1 << 20:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    page += chunk
                negotiated = tls.cipher()[0]
        with socket.create_connection((LOOPBACK, port), IO_TIMEOUT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            raw.settimeout(IO_TIMEOUT)
            try:
                while raw.recv(65536):
                    pass
            except OSError:
                pass
        output, errors = process.communicate(timeout=IO_TIMEOUT * 3)
    finally:
        support.stop_process(process)
    assert process.returncode == 0, errors
    text = page.decode("utf-8", "replace")
    assert text.startswith("HTTP/1.1 200 OK")
    assert "SSL Connected OK with TLSv1.2" in text
    assert negotiated in text
    lines = [line for line in output.splitlines() if line.startswith("127.")]
    assert len(lines) == 2
    assert "SSL Connected OK with TLSv1.2" in lines[0]
    assert "Error, HTTP request, no SSL handshake" in lines[1]
    assert "stopped after 2 clients" in output


def test_serve_stops_on_interrupt() -> None:
    process, port = _start_serve()
    try:
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=IO_TIMEOUT)
    finally:
        support.stop_process(process)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "stopped after 0 clients" in output


def test_version_names_both_openssl_instances() -> None:
    completed = run_icsssl("version")
    assert completed.returncode == 0
    output = completed.stdout
    assert icsssl.pyopenssl_openssl_version() in output
    assert icsssl.openssl_version() in output
    expected = "one, shared" if icsssl.SHARED_OPENSSL else "two,"
    assert expected in output


def test_decode_legacy_code() -> None:
    completed = run_icsssl("decode", "1408A10B")
    assert completed.returncode == 0
    for word in ("SSL routines", "SSL3_GET_CLIENT_HELLO", "wrong version number"):
        assert word in completed.stdout
    assert "1.0.2" in completed.stdout
