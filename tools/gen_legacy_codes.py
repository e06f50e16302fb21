#!/usr/bin/env python3
"""Generate icsssl/_legacy_codes.py from OpenSSL 1.0.2 and 1.1.1 sources.

The tables hold the error code numbers, macro names and message strings
of every library that ``crypto/err/openssl.ec`` lists, read from:

* ``err.h`` and ``crypto/err/err.c``: the ``ERR_LIB_*`` numbers, the
  library names, the ``SYS_F_*`` functions and the common ``ERR_R_*``
  reasons;
* each library's header (1.1.1 also its ``*err.h``) for the ``*_F_*``
  and ``*_R_*`` numbers, and its ``*_err.c`` for the strings that
  ``ERR_func_error_string`` and ``ERR_reason_error_string`` return.

It also records the ``ERR_LIB_*`` numbers of an OpenSSL 3 ``err.h``.

A source is an unpacked source tree, or ``GITDIR@REF`` for a commit of a
git repository, optionally followed by ``:SUBDIR`` when the tree sits in
a subdirectory.  Example, with the OpenSSL repository::

    python tools/gen_legacy_codes.py \\
        --openssl-1.0.2 openssl.git@OpenSSL_1_0_2-stable \\
        --openssl-1.1.1 openssl.git@OpenSSL_1_1_1-stable \\
        --openssl-3-err-h /usr/include/openssl/err.h
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import re
import subprocess
import sys
from typing import Optional

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPOSITORY / "icsssl" / "_legacy_codes.py"

#: Paths of err.h and opensslv.h in each version's source tree.
VERSION_FILES = {
    "1.0.2": ("crypto/err/err.h", "crypto/opensslv.h"),
    "1.1.1": ("include/openssl/err.h", "include/openssl/opensslv.h"),
}

# Macro definitions may be nested this deep (ERR_R_SSL_LIB -> ERR_LIB_SSL).
MAX_MACRO_DEPTH = 16

DEFINE = re.compile(
    r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", re.MULTILINE
)
COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
CAST = re.compile(r"\(\s*(?:unsigned\s+)?(?:long|int)\s*\)")
INTEGER_SUFFIX = re.compile(r"\b(0[xX][0-9A-Fa-f]+|\d+)[uUlL]+\b")

# One ERR_STRING_DATA entry: {KEY, "string"} where KEY is ERR_FUNC(X),
# ERR_REASON(X), ERR_PACK(L, F, R) or a bare macro.  The string may be
# split into adjacent literals.
ENTRY = re.compile(
    r"\{\s*(?P<key>ERR_(?:FUNC|REASON|PACK)\s*\([^{}]*?\)|\w+)\s*,\s*"
    r'(?P<text>(?:"(?:[^"\\]|\\.)*"\s*)+)\}'
)
TABLE = re.compile(
    r"ERR_STRING_DATA\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};", re.DOTALL
)
ERR_FUNC_DEFINE = re.compile(
    r"#\s*define\s+ERR_FUNC\s*\(\s*\w+\s*\)\s+ERR_PACK\s*\(\s*(ERR_LIB_\w+)"
)
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Source:
    """Reader of one OpenSSL source tree, a directory or a git commit."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.git_dir: Optional[str] = None
        self.ref = ""
        self.prefix = ""
        if "@" in spec and not pathlib.Path(spec).is_dir():
            self.git_dir, rest = spec.split("@", 1)
            self.ref, _, subdir = rest.partition(":")
            self.prefix = subdir.strip("/") + "/" if subdir else ""
        elif not pathlib.Path(spec).is_dir():
            raise SystemExit(
                f"source {spec!r} not found: pass a directory or "
                "GITDIR@REF[:SUBDIR]"
            )

    def read(self, path: str) -> Optional[str]:
        """Return the text of *path*, or None if the tree lacks it."""
        if self.git_dir is None:
            file = pathlib.Path(self.spec) / path
            if not file.is_file():
                return None
            return file.read_text(encoding="latin-1")
        result = subprocess.run(
            [
                "git",
                "-C",
                self.git_dir,
                "show",
                f"{self.ref}:{self.prefix}{path}",
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode("latin-1")

    def require(self, path: str) -> str:
        """Return the text of *path*; exit with a message if it is missing."""
        text = self.read(path)
        if text is None:
            raise SystemExit(f"{path} not found in source {self.spec!r}")
        return text


def strip_comments(text: str) -> str:
    """Remove C comments and join continued lines."""
    return COMMENT.sub(" ", text).replace("\\\n", " ")


def collect_defines(text: str, macros: dict[str, str]) -> None:
    """Add every ``#define NAME VALUE`` of *text* to *macros*."""
    for name, value in DEFINE.findall(strip_comments(text)):
        macros.setdefault(name, value)


def evaluate(expression: str, macros: dict[str, str], depth: int = 0) -> int:
    """Evaluate a C integer expression of numbers, macros, |, + and <<."""
    if depth > MAX_MACRO_DEPTH:
        raise ValueError(
            f"macro nesting deeper than {MAX_MACRO_DEPTH}: {expression}"
        )
    cleaned = INTEGER_SUFFIX.sub(r"\1", CAST.sub(" ", expression)).strip()
    tree = ast.parse(cleaned, mode="eval")
    return _evaluate_node(tree.body, macros, depth)


def _evaluate_node(node: ast.AST, macros: dict[str, str], depth: int) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in macros:
            raise KeyError(node.id)
        return evaluate(macros[node.id], macros, depth + 1)
    if isinstance(node, ast.BinOp):
        left = _evaluate_node(node.left, macros, depth)
        right = _evaluate_node(node.right, macros, depth)
        if isinstance(node.op, ast.BitOr):
            return left | right
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.LShift):
            return left << right
    raise ValueError(f"unsupported expression: {ast.dump(node)}")


def unescape(literals: str) -> str:
    """Join adjacent C string literals into one Python string."""
    parts = LITERAL.findall(literals)
    return "".join(
        bytes(part, "latin-1").decode("unicode_escape") for part in parts
    )


def read_libraries(source: Source) -> list[tuple[str, list[str], str]]:
    """Return (NAME, header paths, err.c path) for each ``L`` line of
    openssl.ec that names a library with codes."""
    libraries = []
    for line in source.require("crypto/err/openssl.ec").splitlines():
        fields = line.split()
        if len(fields) != 4 or fields[0] != "L":
            continue
        _, name, header, err_file = fields
        if name in ("ERR", "NONE") or header == "NONE":
            continue
        # 1.1.1 keeps the codes of foo.h in fooerr.h beside it.
        headers = [header, header[: -len(".h")] + "err.h"]
        libraries.append((name, headers, err_file))
    return libraries


def read_string_entries(
    text: str, macros: dict[str, str]
) -> list[tuple[int, int, int, str, str]]:
    """Return (library, function, reason, key macro, string) of every
    ERR_STRING_DATA entry in an err.c file."""
    text = strip_comments(text)
    match = ERR_FUNC_DEFINE.search(text)
    default_library = evaluate(match.group(1), macros) if match else 0
    entries = []
    for _table_name, body in TABLE.findall(text):
        for entry in ENTRY.finditer(body):
            key = entry.group("key")
            string = unescape(entry.group("text"))
            kind, _, arguments = key.partition("(")
            arguments = arguments.rstrip(")").strip()
            kind = kind.strip()
            try:
                if kind == "ERR_FUNC":
                    packed = (default_library, evaluate(arguments, macros), 0)
                    name = arguments
                elif kind == "ERR_REASON":
                    packed = (default_library, 0, evaluate(arguments, macros))
                    name = arguments
                elif kind == "ERR_PACK":
                    parts = [part.strip() for part in arguments.split(",")]
                    values = tuple(evaluate(part, macros) for part in parts)
                    packed = values  # type: ignore[assignment]
                    name = next(
                        (part for part in reversed(parts) if part != "0"), ""
                    )
                else:
                    packed = (0, 0, evaluate(key, macros))
                    name = key
            except KeyError as missing:
                print(
                    f"  skipped {key}: macro {missing} is not defined",
                    file=sys.stderr,
                )
                continue
            library, function, reason = packed
            entries.append((library, function, reason, name, string))
    return entries


# A table row: [macro name, string or None], turned into a tuple at the end.
Row = list[Optional[str]]


def read_release(source: Source, version: str) -> str:
    """Return the release text of *source*; exit unless it is *version*."""
    version_header = VERSION_FILES[version][1]
    texts = re.findall(
        r'OPENSSL_VERSION_TEXT\s+"([^"]*)"', source.require(version_header)
    )
    if not texts:
        raise SystemExit(f"no OPENSSL_VERSION_TEXT in {version_header}")
    # 1.0.2 defines a -fips text first, so the last one is the release.
    release = re.sub(r"\s+", " ", texts[-1])
    if not release.startswith(f"OpenSSL {version}"):
        raise SystemExit(
            f"source {source.spec!r} is {release!r}, not OpenSSL {version}"
        )
    return release


def read_macros(
    source: Source, version: str, libraries: list[tuple[str, list[str], str]]
) -> tuple[dict[str, str], dict[str, int]]:
    """Return the macros of err.h and the libraries' headers, and the
    library number of each code prefix (SSL -> 20)."""
    macros: dict[str, str] = {}
    collect_defines(source.require(VERSION_FILES[version][0]), macros)
    prefixes: dict[str, int] = {}
    for name, headers, _ in libraries:
        for header in headers:
            text = source.read(header)
            if text is not None:
                collect_defines(text, macros)
        prefixes[name] = evaluate(f"ERR_LIB_{name}", macros)
    prefixes["SYS"] = evaluate("ERR_LIB_SYS", macros)
    return macros, prefixes


def classify(
    macro: str, prefixes: dict[str, int]
) -> Optional[tuple[str, int]]:
    """Return ("F" or "R", library) for a function or reason macro, with
    library 0 for the common ERR_R_* reasons, or None for other macros."""
    if macro.startswith("ERR_R_"):
        return None if macro == "ERR_R_FATAL" else ("R", 0)
    for name, library in prefixes.items():
        if macro.startswith(f"{name}_F_"):
            return "F", library
        if macro.startswith(f"{name}_R_"):
            return "R", library
    return None


def number_tables(
    macros: dict[str, str], prefixes: dict[str, int]
) -> tuple[
    dict[int, Row], dict[tuple[int, int], Row], dict[tuple[int, int], Row]
]:
    """Return the libraries, functions and reasons that the macros define,
    each without strings yet."""
    libraries: dict[int, Row] = {}
    for macro in macros:
        if macro.startswith("ERR_LIB_") and macro != "ERR_LIB_USER":
            try:
                libraries[evaluate(macro, macros)] = [macro, None]
            except (KeyError, ValueError, SyntaxError):
                continue
    functions: dict[tuple[int, int], Row] = {}
    reasons: dict[tuple[int, int], Row] = {}
    for macro in sorted(macros):
        kind = classify(macro, prefixes)
        if kind is None:
            continue
        try:
            number = evaluate(macros[macro], macros)
        except (KeyError, ValueError, SyntaxError):
            print(f"  skipped {macro} = {macros[macro]}", file=sys.stderr)
            continue
        table = functions if kind[0] == "F" else reasons
        # Macros that share a number are aliases, and the first name in
        # sorted order is kept.
        table.setdefault((kind[1], number), [macro, None])
    return libraries, functions, reasons


def build_version(source: Source, version: str) -> dict[str, object]:
    """Return the release text and the LIBRARIES, FUNCTIONS and REASONS
    tables of one version."""
    release = read_release(source, version)
    libraries_ec = read_libraries(source)
    macros, prefixes = read_macros(source, version, libraries_ec)
    libraries, functions, reasons = number_tables(macros, prefixes)

    err_files = ["crypto/err/err.c"] + [row[2] for row in libraries_ec]
    for err_file in err_files:
        text = source.read(err_file)
        if text is None:
            print(f"  {err_file} not found in {version}", file=sys.stderr)
            continue
        for library, function, reason, name, string in read_string_entries(
            text, macros
        ):
            if err_file == "crypto/err/err.c" and function and not library:
                # ERR_load_ERR_strings loads these as ERR_LIB_SYS functions.
                library = prefixes["SYS"]
            if function == 0 and reason == 0:
                row = libraries.setdefault(library, [name, None])
            elif reason == 0:
                row = functions.setdefault((library, function), [name, None])
            else:
                row = reasons.setdefault((library, reason), [name, None])
            # A later entry for the same code replaces an earlier one, as
            # in OpenSSL's string table (1.1.1 gives ERR_R_BUF_LIB and
            # ERR_R_PASSED_INVALID_ARGUMENT both the number 7).
            row[:] = [name or row[0], string]

    return {
        "release": release,
        "libraries": {k: tuple(v) for k, v in sorted(libraries.items())},
        "functions": {k: tuple(v) for k, v in sorted(functions.items())},
        "reasons": {k: tuple(v) for k, v in sorted(reasons.items())},
    }


def read_openssl3(path: pathlib.Path) -> dict[str, object]:
    """Return the release, ERR_LIB_* numbers and common ERR_R_* reasons
    (flags included) of an OpenSSL 3 err.h."""
    macros: dict[str, str] = {}
    collect_defines(path.read_text(encoding="latin-1"), macros)
    libraries = {}
    common_reasons = {}
    for macro, expression in macros.items():
        if macro in ("ERR_LIB_USER", "ERR_LIB_OFFSET", "ERR_LIB_MASK"):
            continue
        if macro == "ERR_R_FATAL" or not macro.startswith(
            ("ERR_LIB_", "ERR_R_")
        ):
            continue
        try:
            value = evaluate(expression, macros)
        except (KeyError, ValueError, SyntaxError):
            print(f"  skipped {macro} = {expression}", file=sys.stderr)
            continue
        if macro.startswith("ERR_LIB_"):
            libraries[value] = macro
        else:
            common_reasons.setdefault(value, macro)
    release = "OpenSSL 3"
    version_file = path.with_name("opensslv.h")
    if version_file.is_file():
        found = re.search(
            r'OPENSSL_VERSION_STR\s+"([^"]*)"', version_file.read_text()
        )
        if found:
            release = f"OpenSSL {found.group(1)}"
    return {
        "release": release,
        "libraries": dict(sorted(libraries.items())),
        "common_reasons": dict(sorted(common_reasons.items())),
    }


def render_dict(name: str, annotation: str, table: dict) -> list[str]:
    """Return the lines of one ``NAME: annotation = {...}`` assignment."""
    lines = [f"{name}: {annotation} = {{"]
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"    {key!r}: {{")
            lines.extend(f"        {k!r}: {v!r}," for k, v in value.items())
            lines.append("    },")
        else:
            lines.append(f"    {key!r}: {value!r},")
    lines.append("}")
    lines.append("")
    return lines


def render(
    tables: dict[str, dict[str, object]],
    openssl3: dict[str, object],
) -> str:
    """Return the text of the generated module."""
    releases = {version: tables[version]["release"] for version in tables}
    lines = [
        '"""OpenSSL 1.0.2 and 1.1.1 error code tables.',
        "",
        "Generated by tools/gen_legacy_codes.py from the err.h,",
        "crypto/err/err.c and each library's header and *_err.c file of the",
        "releases in RELEASES; do not edit by hand.  Keys are (library,",
        "number), and library 0 holds the common ERR_R_* reasons.  Each value",
        "is (macro name, string that OpenSSL prints), with None where the",
        "release has no string.  OPENSSL3_LIBRARIES and",
        "OPENSSL3_COMMON_REASONS hold the ERR_LIB_* numbers and the ERR_R_*",
        "reasons, flag bits included, of OPENSSL3_RELEASE's err.h.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Optional",
        "",
        "Entry = tuple[str, Optional[str]]",
        "",
    ]
    lines += render_dict("RELEASES", "dict[str, str]", releases)
    lines += [f"OPENSSL3_RELEASE = {openssl3['release']!r}", ""]
    for name in ("libraries", "common_reasons"):
        lines += render_dict(
            f"OPENSSL3_{name.upper()}", "dict[int, str]", openssl3[name]
        )
    for table, annotation in (
        ("libraries", "dict[str, dict[int, Entry]]"),
        ("functions", "dict[str, dict[tuple[int, int], Entry]]"),
        ("reasons", "dict[str, dict[tuple[int, int], Entry]]"),
    ):
        per_version = {version: tables[version][table] for version in tables}
        lines += render_dict(table.upper(), annotation, per_version)
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Parse the sources and write the module; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--openssl-1.0.2", dest="v102", required=True, metavar="SOURCE"
    )
    parser.add_argument(
        "--openssl-1.1.1", dest="v111", required=True, metavar="SOURCE"
    )
    parser.add_argument(
        "--openssl-3-err-h",
        type=pathlib.Path,
        default=pathlib.Path("/usr/include/openssl/err.h"),
        metavar="FILE",
        help="err.h of an OpenSSL 3 release (default: %(default)s)",
    )
    parser.add_argument(
        "--output", type=pathlib.Path, default=DEFAULT_OUTPUT, metavar="FILE"
    )
    arguments = parser.parse_args(argv)

    tables = {}
    for version, spec in (
        ("1.0.2", arguments.v102),
        ("1.1.1", arguments.v111),
    ):
        print(f"reading OpenSSL {version} from {spec}", file=sys.stderr)
        tables[version] = build_version(Source(spec), version)
        counts = {
            name: len(tables[version][name])  # type: ignore[arg-type]
            for name in ("libraries", "functions", "reasons")
        }
        print(f"  {tables[version]['release']}: {counts}", file=sys.stderr)
    openssl3 = read_openssl3(arguments.openssl_3_err_h)
    arguments.output.write_text(render(tables, openssl3))
    print(f"wrote {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
