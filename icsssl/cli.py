"""The ``icsssl`` command line: ``demo``, ``probe``, ``serve``, ``decode``,
``version``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from icsssl import legacy, probe, serve


def _version(arguments: argparse.Namespace) -> int:
    import cffi
    import cryptography
    import OpenSSL

    import icsssl

    build = icsssl.openssl_build_version()
    rows = [
        ("icsssl", icsssl.__version__),
        ("pyOpenSSL", OpenSSL.__version__),
        ("cryptography", cryptography.__version__),
        ("cffi", cffi.__version__),
        ("pyOpenSSL runs on", icsssl.pyopenssl_openssl_version()),
        ("icsssl built against", f"OpenSSL headers 0x{build:08X}"),
        ("icsssl runs on", icsssl.openssl_version()),
        (
            "OpenSSL instances",
            "one, shared by pyOpenSSL and icsssl"
            if icsssl.SHARED_OPENSSL
            else "two, pyOpenSSL's and icsssl's are separate",
        ),
        ("Python", sys.version.split()[0]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _demo(arguments: argparse.Namespace) -> int:
    from icsssl import demo

    return demo.run(sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``icsssl`` command."""
    parser = argparse.ArgumentParser(
        prog="icsssl",
        description=(
            "Show TLS handshakes as Delphi ICS reports them: the packed "
            "OpenSSL error, a one-line message and the cipher details."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        dest="log_debug",
        help="log every OpenSSL error icsssl captures (debug level)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo_parser = commands.add_parser(
        "demo",
        help="run real handshakes on loopback and print both sides' reports",
    )
    demo_parser.set_defaults(handler=_demo)

    probe.add_parser(commands)
    serve.add_parser(commands)
    legacy.add_parser(commands)

    version_parser = commands.add_parser(
        "version",
        help="print the versions of icsssl, pyOpenSSL and both OpenSSLs",
    )
    version_parser.set_defaults(handler=_version)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``icsssl`` command and return its exit status."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.log_debug else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        return int(arguments.handler(arguments))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`icsssl demo | head`).
        # Point stdout at devnull so the interpreter's final flush does
        # not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
