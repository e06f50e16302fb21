"""Decode OpenSSL error codes of the 1.0.2, 1.1.1 and 3.x layouts.

Logs of Delphi ICS applications built on OpenSSL 1.0.2 or 1.1.1 carry
codes such as ``1408A10B``; the same failure on OpenSSL 3 is
``0A00010B``.  The two layouts pack a code differently:

* OpenSSL 1.0 and 1.1: library in bits 24-31, function in bits 12-23,
  reason in bits 0-11.
* OpenSSL 3: bit 31 set means a system error (library 2, ``errno`` in
  bits 0-30).  Otherwise the library is in bits 23-30 and the reason in
  bits 0-22, of which bits 18-22 are flags (18 ``ERR_RFLAG_FATAL``, 19
  ``ERR_RFLAG_COMMON``).  There is no function field.

Names and strings of 1.0.2 and 1.1.1 come from tables generated from
those releases' sources (:mod:`icsssl._legacy_codes`).  Texts of 3.x
codes come from the OpenSSL that icsssl runs on, and fall back to the
1.1.1 table for reason numbers it has no text for.

Most codes are valid in only one layout, so :func:`decode_code` infers
the layout when *layout* is None, by this rule:

1. A 1.x reading fits OpenSSL 1.0.2 (or 1.1.1) when that release defines
   the library, defines the function number for that library, and
   defines the reason for that library or as a common ``ERR_R_*`` reason.
   OpenSSL 1.x raises each error with a function code from its headers,
   so function 0 never fits.  Any reason fits the system library, whose
   reasons are ``errno`` values.
2. The 3.x reading fits when bit 31 is set, which marks a system error.
   Otherwise it fits when OpenSSL 3.0 defines the library and the reason
   is one of its common ``ERR_R_*`` reasons (flag bits included), or has
   no flag bit set and a number from 1 to 4095.  Every reason that
   OpenSSL 3.0 defines lies in that range.
3. An ``error:...`` string narrows the choice first.  An empty function
   field means OpenSSL 3, which prints none, and ``func(N)`` means 1.x,
   because OpenSSL 3 never prints that form.  A library name that differs
   from a reading's library name rules that reading out.  A function name
   equal to a 1.x release's string for the function number (compared
   exactly, else ignoring case, else with the macro name) selects that
   release and rules out OpenSSL 3.
4. If exactly one layout fits, it is used.  If both the 1.x and the 3.x
   readings fit, or neither does, :func:`decode_code` raises ValueError
   and names both readings, so the caller passes *layout* explicitly.
   When both 1.0.2 and 1.1.1 fit, both are used and names that differ
   between them are shown side by side.

NOTE: the OpenSSL 3 libraries and common reasons are those of the 3.0
headers the tables were generated from.  A library or common reason
added by a later 3.x release makes its codes fit no layout, or only the
1.x one, until the tables are regenerated.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno as _errno
import json
import os
import re
import sys
from typing import Any, Callable, Optional, Sequence, Union

from icsssl import _legacy_codes as tables
from icsssl import errors
from icsssl._openssl import lib as _lib
from icsssl.errors import (
    MAX_CODE,
    check_code,
    lib_error_string,
    reason_error_string,
)

#: Values of the *layout* argument and of ``--layout``.
LAYOUTS = ("1.0.2", "1.1.1", "3")
LEGACY_VERSIONS = ("1.0.2", "1.1.1")

ERR_LIB_SYS = 2
ERR_LIB_SSL = 20

# OpenSSL 1.x: ERR_R_FATAL marks the common reasons (those below 100,
# openssl/err.h) that report fatal errors.
LEGACY_ERR_R_FATAL = 64
LEGACY_COMMON_REASON_LIMIT = 100

# OpenSSL 3.x packing (openssl/err.h of 3.0).
ERR_SYSTEM_FLAG = 0x80000000
ERR_RFLAG_FATAL = 1 << 18
ERR_RFLAG_COMMON = 2 << 18
ERR_RFLAGS_MASK = 0x1F << 18
MAX_OPENSSL3_REASON = 0xFFF

# SSL reasons from 1000 to 1255 report a TLS alert that the peer sent,
# as SSL_AD_REASON_OFFSET + alert number in 1.x and 3.x alike.
SSL_AD_REASON_OFFSET = 1000
MAX_ALERT = 255

_HEX = re.compile(r"(?:0[xX]|\$)?([0-9A-Fa-f]+)")
_ERROR_STRING = re.compile(
    r"error:([0-9A-Fa-f]+)"
    r"(?::([^:\r\n]*)(?::([^:\r\n]*)(?::([^:\r\n]*))?)?)?"
)
_FUNC_NUMBER = re.compile(r"func\((\d+)\)")


@dataclasses.dataclass(frozen=True)
class DecodedError:
    """One packed OpenSSL error code, decoded with one layout.

    Names that differ between OpenSSL 1.0.2 and 1.1.1, when both were
    used, are joined as ``name (1.0.2) / other (1.1.1)``.
    """

    code: int
    #: The layout and how it was chosen, e.g. "OpenSSL 1.0.2 layout, given".
    layout: str
    #: The releases whose tables were used: ("1.0.2",), ("3",), ...
    versions: tuple[str, ...]
    #: True when *layout* was None and the layout was inferred.
    inferred: bool
    #: The reasons for the inferred layout, or "" when it was given.
    basis: str
    library: int
    #: The library name as OpenSSL prints it, or "lib(N)" if it has none.
    library_name: str
    #: The function number, always 0 in the 3.x layout.
    function: int
    #: The function macro without its ``*_F_`` prefix
    #: ("SSL3_GET_CLIENT_HELLO"), "func(N)" if undefined, "" on 3.x.
    function_name: str
    #: The string ERR_func_error_string returns ("ssl3_get_client_hello").
    function_string: str
    #: The reason number, with the 3.x flag bits, or the errno value.
    reason: int
    #: The reason macro ("SSL_R_WRONG_VERSION_NUMBER"), "" if unknown.
    reason_name: str
    #: The reason text as OpenSSL prints it, or "reason(N)" if it has none.
    reason_text: str
    #: The TLS alert number the peer sent, for SSL reasons 1000-1255.
    alert: Optional[int]
    #: Whether the reason is a common reason flagged fatal.
    fatal: bool
    #: Caveats, such as texts taken from another release's table.
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        fields = [self.library_name]
        if self.function_name:
            fields.append(self.function_name)
        fields.append(self.reason_text)
        text = f"0x{self.code:08X}: {', '.join(fields)}"
        if self.alert is not None:
            text += f" (TLS alert {self.alert})"
        return f"{text} [{self.layout}]"


@dataclasses.dataclass(frozen=True)
class _ErrorText:
    """The fields after the code in an ``error:...`` string."""

    library: Optional[str]
    function: Optional[str]
    reason: Optional[str]


def decode_code(
    code_or_text: Union[int, str], layout: Optional[str] = None
) -> DecodedError:
    """Decode a packed OpenSSL error code with the 1.0.2, 1.1.1 or 3 layout.

    *code_or_text* is an int, a hex string with or without ``0x`` (or
    Delphi's ``$``), or a whole ``error:...`` string as OpenSSL prints it
    (``error:1408A10B:SSL routines:ssl3_get_client_hello:wrong version
    number``).  *layout* is ``"1.0.2"``, ``"1.1.1"``, ``"3"`` or None to
    infer it by the rule in this module's docstring.

    :raises TypeError: if *code_or_text* is not an int or a str, or
        *layout* is not a str or None.
    :raises ValueError: if the code is invalid or out of range, *layout* is
        unknown, or *layout* is None and the layout cannot be inferred.
    """
    check_layout(layout)
    code, text = parse_code(code_or_text)
    if layout == "3":
        return _decode_openssl3(code, "OpenSSL 3 layout, given", False, "")
    if layout is not None:
        return _decode_legacy(
            code, (layout,), f"OpenSSL {layout} layout, given", False, ""
        )
    return _infer(code, text)


def check_layout(layout: object) -> None:
    """Raise unless *layout* is None or one of :data:`LAYOUTS`."""
    if layout is None or layout in LAYOUTS:
        return
    choices = ", ".join(repr(choice) for choice in LAYOUTS)
    message = f"layout must be one of {choices} or None, got {layout!r}"
    if not isinstance(layout, str):
        raise TypeError(message)
    raise ValueError(message)


def parse_code(value: object) -> tuple[int, Optional[_ErrorText]]:
    """Return the packed code of *value* and the fields of an ``error:``
    string.

    :raises TypeError: if *value* is not an int or a str (bool included).
    :raises ValueError: if *value* contains no hex code between 0 and
        0xFFFFFFFF.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            "code must be an int or a hex str such as '1408A10B', "
            f"got {type(value).__name__} {value!r}"
        )
    if isinstance(value, int):
        return check_code(value), None
    stripped = value.strip()
    found = _ERROR_STRING.search(stripped)
    if found:
        digits = found.group(1)
        text: Optional[_ErrorText] = _ErrorText(
            library=found.group(2),
            function=found.group(3),
            reason=found.group(4),
        )
    else:
        match = _HEX.fullmatch(stripped)
        if not match:
            raise ValueError(
                f"invalid code {value!r}: use hex digits such as 1408A10B or "
                "0x0A00010B, or a whole error:... string"
            )
        digits, text = match.group(1), None
    code = int(digits, 16)
    if code > MAX_CODE:
        raise ValueError(
            f"code {value!r} is larger than 0xFFFFFFFF: OpenSSL codes have "
            "at most 8 hex digits"
        )
    return code, text


# --- Readings ------------------------------------------------------------


def _legacy_fields(code: int) -> tuple[int, int, int]:
    return (code >> 24) & 0xFF, (code >> 12) & 0xFFF, code & 0xFFF


def _openssl3_fields(code: int) -> tuple[int, int]:
    if code & ERR_SYSTEM_FLAG:
        return ERR_LIB_SYS, code & ~ERR_SYSTEM_FLAG
    return (code >> 23) & 0xFF, code & 0x7FFFFF


def legacy_problems(code: int, version: str) -> list[str]:
    """Return why *code* does not fit OpenSSL *version*'s 1.x tables."""
    errors.check_code(code)
    if version not in tables.LIBRARIES:
        raise ValueError(
            f"version must be one of {sorted(tables.LIBRARIES)}, got "
            f"{version!r}"
        )
    library, function, reason = _legacy_fields(code)
    libraries = tables.LIBRARIES[version]
    if library not in libraries:
        return [f"it defines no library {library}"]
    problems = []
    if (library, function) not in tables.FUNCTIONS[version]:
        problems.append(
            f"it defines no function {function} in library {library} "
            f"({_legacy_library_name(version, library)})"
        )
    if library != ERR_LIB_SYS and not _legacy_reason_entry(
        version, library, reason
    ):
        problems.append(f"it defines no reason {reason} in library {library}")
    return problems


def openssl3_problems(code: int) -> list[str]:
    """Return why *code* does not fit the OpenSSL 3 layout."""
    errors.check_code(code)
    if code & ERR_SYSTEM_FLAG:
        return []
    library, reason = _openssl3_fields(code)
    problems = []
    if library not in tables.OPENSSL3_LIBRARIES:
        problems.append(f"it defines no library {library}")
    if reason & ERR_RFLAGS_MASK:
        if reason not in tables.OPENSSL3_COMMON_REASONS:
            problems.append(
                f"its reason 0x{reason:06X} has flag bits 18-22 set but is "
                "none of the common ERR_R_* reasons"
            )
    elif not 1 <= reason <= MAX_OPENSSL3_REASON:
        problems.append(
            f"its reason number {reason} is outside 1-4095, the range that "
            "holds every OpenSSL 3.0 reason"
        )
    return problems


def _infer(code: int, text: Optional[_ErrorText]) -> DecodedError:
    legacy = {v: legacy_problems(code, v) for v in LEGACY_VERSIONS}
    openssl3 = openssl3_problems(code)
    evidence = _apply_error_text(code, text, legacy, openssl3)
    legacy_fits = tuple(v for v in LEGACY_VERSIONS if not legacy[v])
    misfits = [
        _misfit(f"OpenSSL {v}", legacy[v])
        for v in LEGACY_VERSIONS
        if legacy[v]
    ]
    if openssl3:
        misfits.append(_misfit("OpenSSL 3", openssl3))
    basis = " ".join(f"{sentence}." for sentence in evidence + misfits)
    if legacy_fits and not openssl3:
        raise ValueError(_ambiguity_message(code, legacy_fits))
    if legacy_fits:
        name = "/".join(legacy_fits)
        return _decode_legacy(
            code, legacy_fits, f"OpenSSL {name} layout, inferred", True, basis
        )
    if not openssl3:
        return _decode_openssl3(
            code, "OpenSSL 3 layout, inferred", True, basis
        )
    raise ValueError(
        f"code 0x{code:08X} fits no layout. {basis} Give the layout to decode "
        "it anyway: --layout 1.0.2, 1.1.1 or 3 on the command line, "
        "layout='1.0.2', '1.1.1' or '3' in Python."
    )


def _misfit(name: str, problems: list[str]) -> str:
    return f"{name} does not fit because {'; '.join(problems)}"


def _apply_error_text(
    code: int,
    text: Optional[_ErrorText],
    legacy: dict[str, list[str]],
    openssl3: list[str],
) -> list[str]:
    """Add the problems that an ``error:`` string's fields reveal to
    *legacy* and *openssl3*, and return the evidence as sentences."""
    if text is None:
        return []
    evidence = []
    function_text = text.function
    if function_text == "":
        for version in LEGACY_VERSIONS:
            legacy[version].append(
                "the error string has an empty function field, which "
                "OpenSSL 1.x never prints"
            )
    elif function_text is not None and _FUNC_NUMBER.fullmatch(function_text):
        openssl3.append(
            f"the error string has {function_text}, which it never prints"
        )
    elif function_text:
        # Match the printed string exactly first, because 1.0.2 and 1.1.1
        # print some names in different case (SSL3_GET_RECORD and
        # ssl3_get_record).  Then ignore case, because older releases
        # printed SSL3_GET_CLIENT_HELLO where 1.0.2 prints
        # ssl3_get_client_hello.
        matching = [
            version
            for version in LEGACY_VERSIONS
            if _function_text_matches(code, version, function_text, True)
        ] or [
            version
            for version in LEGACY_VERSIONS
            if _function_text_matches(code, version, function_text, False)
        ]
        if matching:
            evidence.append(
                f"The error string's function {function_text!r} is the "
                f"OpenSSL {'/'.join(matching)} name of function "
                f"{_legacy_fields(code)[1]}"
            )
            openssl3.append("the error string names a 1.x function")
            for version in LEGACY_VERSIONS:
                if version not in matching:
                    legacy[version].append(
                        f"it does not name the function {function_text!r}"
                    )
    if text.library:
        _check_library_text(code, text.library, legacy, openssl3)
    return evidence


def _function_text_matches(
    code: int, version: str, text: str, exact: bool
) -> bool:
    library, function, _ = _legacy_fields(code)
    entry = tables.FUNCTIONS[version].get((library, function))
    if entry is None:
        return False
    if exact:
        return text == entry[1]
    names = {_strip_prefix(entry[0], "_F_").lower()}
    if entry[1]:
        names.add(entry[1].lower())
    return text.lower() in names


def _check_library_text(
    code: int,
    library_text: str,
    legacy: dict[str, list[str]],
    openssl3: list[str],
) -> None:
    expected = library_text.strip().lower()
    library, _, _ = _legacy_fields(code)
    for version in LEGACY_VERSIONS:
        name = _legacy_library_name(version, library)
        if name.lower() != expected:
            legacy[version].append(
                f"the error string's library {library_text!r} is not "
                f"its {name!r}"
            )
    name3, _ = _openssl3_library_name(code)
    if name3.lower() != expected:
        openssl3.append(
            f"the error string's library {library_text!r} is not its {name3!r}"
        )


def _ambiguity_message(code: int, legacy_fits: tuple[str, ...]) -> str:
    as_legacy = _decode_legacy(code, legacy_fits, "", False, "")
    as_openssl3 = _decode_openssl3(code, "", False, "")
    return (
        f"code 0x{code:08X} is ambiguous. As OpenSSL "
        f"{'/'.join(legacy_fits)} it is {_summary(as_legacy)}. As OpenSSL 3 "
        f"it is {_summary(as_openssl3)}. Give the layout: "
        "--layout 1.0.2, 1.1.1 or 3 on the command line, layout='1.0.2', "
        "'1.1.1' or '3' in Python."
    )


def _summary(decoded: DecodedError) -> str:
    fields = [f"library {decoded.library} ({decoded.library_name})"]
    if decoded.function_name:
        fields.append(f"function {decoded.function} ({decoded.function_name})")
    fields.append(f"reason {decoded.reason} ({decoded.reason_text})")
    return ", ".join(fields)


# --- Decoding with one layout ----------------------------------------------


def _decode_legacy(
    code: int,
    versions: tuple[str, ...],
    layout: str,
    inferred: bool,
    basis: str,
) -> DecodedError:
    library, function, reason = _legacy_fields(code)
    notes: list[str] = []
    function_names = {}
    function_strings = {}
    reason_names = {}
    reason_texts = {}
    for version in versions:
        entry = tables.FUNCTIONS[version].get((library, function))
        if entry is None:
            function_names[version] = f"func({function})"
            function_strings[version] = f"func({function})"
        else:
            function_names[version] = _strip_prefix(entry[0], "_F_")
            function_strings[version] = entry[1] or f"func({function})"
        if library == ERR_LIB_SYS:
            reason_names[version] = _errno.errorcode.get(reason, "")
            reason_texts[version] = _strerror(reason, notes)
            continue
        reason_entry = _legacy_reason_entry(version, library, reason)
        reason_names[version] = reason_entry[0] if reason_entry else ""
        reason_texts[version] = (
            reason_entry[1]
            if reason_entry and reason_entry[1]
            else f"reason({reason})"
        )
    library_names = {v: _legacy_library_name(v, library) for v in versions}
    fatal = (
        library != ERR_LIB_SYS
        and reason < LEGACY_COMMON_REASON_LIMIT
        and bool(reason & LEGACY_ERR_R_FATAL)
    )
    return DecodedError(
        code=code,
        layout=layout,
        versions=versions,
        inferred=inferred,
        basis=basis,
        library=library,
        library_name=_join_versions(library_names),
        function=function,
        function_name=_join_versions(function_names),
        function_string=_join_versions(function_strings),
        reason=reason,
        reason_name=_join_versions(reason_names),
        reason_text=_join_versions(reason_texts),
        alert=_alert(library, reason),
        fatal=fatal,
        notes=tuple(dict.fromkeys(notes)),
    )


def _decode_openssl3(
    code: int, layout: str, inferred: bool, basis: str
) -> DecodedError:
    library, reason = _openssl3_fields(code)
    notes: list[str] = []
    library_name, library_note = _openssl3_library_name(code)
    if library_note:
        notes.append(library_note)
    reason_name = ""
    reason_text = _running_text(reason_error_string, code)
    if code & ERR_SYSTEM_FLAG:
        reason_name = _errno.errorcode.get(reason, "")
        if reason_text is None:
            reason_text = _strerror(reason, notes)
    elif reason & ERR_RFLAGS_MASK:
        reason_name = tables.OPENSSL3_COMMON_REASONS.get(reason, "")
    elif reason_text is None:
        entry = tables.REASONS["1.1.1"].get((library, reason))
        if entry and entry[1]:
            reason_name, reason_text = entry[0], entry[1]
            notes.append(
                "reason text from the OpenSSL 1.1.1 table, because the "
                f"OpenSSL icsssl runs on has none for reason {reason} of "
                f"library {library}"
            )
    if reason_text is None:
        reason_text = f"reason({reason})"
    return DecodedError(
        code=code,
        layout=layout,
        versions=("3",),
        inferred=inferred,
        basis=basis,
        library=library,
        library_name=library_name,
        function=0,
        function_name="",
        function_string="",
        reason=reason,
        reason_name=reason_name,
        reason_text=reason_text,
        alert=None if code & ERR_SYSTEM_FLAG else _alert(library, reason),
        fatal=not (code & ERR_SYSTEM_FLAG) and bool(reason & ERR_RFLAG_FATAL),
        notes=tuple(notes),
    )


# --- Table and text look-ups -----------------------------------------------


def _legacy_library_name(version: str, library: int) -> str:
    entry = tables.LIBRARIES[version].get(library)
    if entry is None or entry[1] is None:
        return f"lib({library})"
    return entry[1]


def _legacy_reason_entry(
    version: str, library: int, reason: int
) -> Optional[tuple[str, Optional[str]]]:
    # ERR_reason_error_string falls back to the common (library 0) reasons.
    reasons = tables.REASONS[version]
    return reasons.get((library, reason)) or reasons.get((0, reason))


def _openssl3_library_name(code: int) -> tuple[str, str]:
    """Return the OpenSSL 3 library name of *code* and a note on its
    source, empty when it came from the running OpenSSL."""
    library, _ = _openssl3_fields(code)
    name = _running_text(lib_error_string, code)
    if name is not None:
        return name, ""
    entry = tables.LIBRARIES["1.1.1"].get(library)
    if entry is not None and entry[1] is not None:
        return entry[1], (
            "library name from the OpenSSL 1.1.1 table, because the OpenSSL "
            f"icsssl runs on has none for library {library}"
        )
    return f"lib({library})", ""


def _running_text(
    lookup: Callable[[int], Optional[str]], code: int
) -> Optional[str]:
    # The running OpenSSL reads codes in its own layout, so its texts
    # apply to 3.x codes only when it is OpenSSL 3 or later.
    if _lib.OpenSSL_version_num() < 0x30000000:
        return None
    return lookup(code)


def _strerror(number: int, notes: list[str]) -> str:
    notes.append(
        f"errno {number} is read with this machine's strerror(), and the "
        "machine that logged the code may number errors differently"
    )
    return os.strerror(number)


def _alert(library: int, reason: int) -> Optional[int]:
    if library != ERR_LIB_SSL:
        return None
    alert = reason - SSL_AD_REASON_OFFSET
    return alert if 0 <= alert <= MAX_ALERT else None


def _strip_prefix(macro: str, marker: str) -> str:
    _, found, rest = macro.partition(marker)
    return rest if found else macro


def _join_versions(values: dict[str, str]) -> str:
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return " / ".join(
        f"{value} ({version})" for version, value in values.items()
    )


# --- Command line ----------------------------------------------------------


def run_decode(arguments: argparse.Namespace) -> int:
    """Decode ``arguments.code`` and print it; return 0, or 2 on invalid
    input."""
    try:
        decoded = decode_code(arguments.code, arguments.layout)
    except (TypeError, ValueError) as error:
        print(f"icsssl decode: {error}", file=sys.stderr)
        return 2

    if arguments.json:
        result = dataclasses.asdict(decoded)
        result["code_hex"] = f"0x{decoded.code:08X}"
        print(json.dumps(result, indent=2))
    else:
        _print_text(decoded)
    return 0


def _print_text(decoded: DecodedError) -> None:
    print(decoded)
    rows = [("layout", decoded.layout)]
    if decoded.basis:
        rows.append(("because", decoded.basis))
    rows.append(("library", f"{decoded.library} {decoded.library_name}"))

    if "3" not in decoded.versions:
        rows.append(
            ("function", f"{decoded.function} {decoded.function_name}")
        )
        if decoded.function_string != decoded.function_name:
            rows.append(("printed as", decoded.function_string))

    reason = f"{decoded.reason} {decoded.reason_text}"
    if decoded.reason_name:
        reason += f" ({decoded.reason_name})"
    rows.append(("reason", reason))
    if decoded.alert is not None:
        rows.append(("alert", f"TLS alert {decoded.alert} sent by the peer"))
    if decoded.fatal:
        rows.append(("fatal", "yes, a common reason flagged fatal"))
    rows.extend(("note", note) for note in decoded.notes)

    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "code",
        metavar="CODE",
        help="hex code (1408A10B, 0x0A00010B) or a whole error:... string",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="decode with this OpenSSL release's layout, not an inferred one",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON"
    )
    parser.set_defaults(handler=run_decode)


_DESCRIPTION = (
    "Decode a packed OpenSSL error code from an OpenSSL 1.0.2, 1.1.1 or 3.x "
    "log into library, function and reason.  Without --layout, the layout "
    "is inferred when only one fits, and an ambiguous code exits 2 with a "
    "request for --layout.  Exits 0 on success, 2 on invalid input."
)


def add_parser(commands: Any) -> None:
    """Add the ``decode`` command to the ``icsssl`` parser."""
    parser = commands.add_parser(
        "decode",
        help="decode an OpenSSL 1.0.2, 1.1.1 or 3.x error code",
        description=_DESCRIPTION,
    )
    _add_arguments(parser)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m icsssl.legacy CODE`` and return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m icsssl.legacy", description=_DESCRIPTION
    )
    _add_arguments(parser)
    return run_decode(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
