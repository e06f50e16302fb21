"""Client and server in two processes over loopback TCP sockets.

One server process per contender listens on an ephemeral port of
127.0.0.1 and runs that contender's server side on every connection it
accepts.  One client process runs batches of connections on request and
times them, so the parent process, which only sends requests, does not
compete for the two CPUs.  Processes start with ``spawn``, so none
inherits the parent's OpenSSL state.
"""

from __future__ import annotations

import gc
import multiprocessing
import socket
import ssl
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import drivers
from certificates import CertificateFiles
from OpenSSL import SSL

ACCEPT_POLL_SECONDS = 0.2
# Bounds on a server process's life.  The parent stops it much earlier.
MAX_SERVER_SECONDS = 30 * 60
MAX_SERVER_LOOPS = 5_000_000
START_TIMEOUT_SECONDS = 60
BATCH_TIMEOUT_SECONDS = 120
MAX_ERRORS_KEPT = 5

_EXCHANGE_ERRORS = (SSL.Error, ssl.SSLError, OSError, RuntimeError)


def _server_main(label: str, files: CertificateFiles, pipe: Pipe) -> None:
    contender = drivers.CONTENDERS[label]
    context = contender.server_context(files)
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(ACCEPT_POLL_SECONDS)
    pipe.send(listener.getsockname()[1])
    served = 0
    errors: list[str] = []
    error_count = 0
    deadline = time.monotonic() + MAX_SERVER_SECONDS
    with listener:
        for _ in range(MAX_SERVER_LOOPS):
            # The only message the parent sends a server is "stop".
            if pipe.poll() or time.monotonic() > deadline:
                break
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            drivers.set_socket_options(sock, client=False)
            try:
                contender.serve(context, sock)
                served += 1
            except _EXCHANGE_ERRORS as error:
                error_count += 1
                if len(errors) < MAX_ERRORS_KEPT:
                    errors.append(repr(error))
    pipe.send({"served": served, "errors": error_count, "first": errors})


def _client_main(files: CertificateFiles, pipe: Pipe) -> None:
    contexts: dict[tuple[str, str], Any] = {}
    for _ in range(MAX_SERVER_LOOPS):
        request = pipe.recv()
        if request is None:
            return
        label, version, port, connections, chunk_size, chunks = request
        contender = drivers.CONTENDERS[label]
        key = (label, version)
        if key not in contexts:
            contexts[key] = contender.client_context(files, version)
        chunk = b"\x5a" * chunk_size
        gc.collect()
        try:
            start = time.perf_counter()
            for _ in range(connections):
                contender.exchange(contexts[key], port, chunk, chunks)
            elapsed = time.perf_counter() - start
        except _EXCHANGE_ERRORS as error:
            pipe.send(("error", f"{label} TLS {version}: {error!r}"))
            continue
        pipe.send(("ok", elapsed))


class Loopback:
    """The server processes and the client process of one benchmark run.

    Use it as a context manager.  Leaving it stops every process.
    """

    def __init__(self, files: CertificateFiles, labels: list[str]) -> None:
        self._files = files
        self._labels = labels
        self._spawn = multiprocessing.get_context("spawn")
        self._servers: dict[str, tuple[Any, Pipe]] = {}
        self.ports: dict[str, int] = {}
        self._client: Any = None
        self._client_pipe: Pipe | None = None
        self.server_reports: dict[str, Any] = {}

    def __enter__(self) -> Loopback:
        try:
            for label in self._labels:
                parent_end, child_end = self._spawn.Pipe()
                process = self._spawn.Process(
                    target=_server_main,
                    args=(label, self._files, child_end),
                    name=f"benchmark server ({label})",
                    daemon=True,
                )
                process.start()
                self._servers[label] = (process, parent_end)
            for label, (_, pipe) in self._servers.items():
                self.ports[label] = self._receive(pipe, START_TIMEOUT_SECONDS)
            parent_end, child_end = self._spawn.Pipe()
            self._client = self._spawn.Process(
                target=_client_main,
                args=(self._files, child_end),
                name="benchmark client",
                daemon=True,
            )
            self._client.start()
            self._client_pipe = parent_end
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @staticmethod
    def _receive(pipe: Pipe, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(
                f"no response from a benchmark process within {timeout} s"
            )
        return pipe.recv()

    def run_batch(
        self,
        label: str,
        version: str,
        connections: int,
        chunk_size: int = 0,
        chunks: int = 0,
    ) -> float:
        """Return the seconds the client process took for *connections*
        exchanges with *label*'s server, each a handshake followed by
        *chunks* writes of *chunk_size* bytes."""
        assert self._client_pipe is not None
        self._client_pipe.send(
            (
                label,
                version,
                self.ports[label],
                connections,
                chunk_size,
                chunks,
            )
        )
        status, value = self._receive(self._client_pipe, BATCH_TIMEOUT_SECONDS)
        if status != "ok":
            raise RuntimeError(f"loopback batch failed: {value}")
        return float(value)

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None and self._client_pipe is not None:
            try:
                self._client_pipe.send(None)
            except OSError:
                pass
            self._client.join(timeout=10)
            if self._client.is_alive():
                self._client.terminate()
        for label, (process, pipe) in self._servers.items():
            try:
                pipe.send("stop")
                self.server_reports[label] = self._receive(pipe, 10)
            except (OSError, EOFError, TimeoutError) as error:
                self.server_reports[label] = {"stop_error": repr(error)}
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
