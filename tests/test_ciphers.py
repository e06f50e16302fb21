"""Cipher descriptions against ``openssl ciphers -V -stdname``.

The ``openssl`` command runs on the system OpenSSL, the same library as
icsssl's module, so its listing is an independent record of every
``SSL_CIPHER_description`` line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import icsssl
from support import IO_TIMEOUT, OPENSSL, description_fields, openssl_binary_version

# "0x13,0x02 - TLS_AES_256_GCM_SHA384 - TLS_AES_256_GCM_SHA384  TLSv1.3 ..."
_LISTING_LINE = re.compile(
    r"^\s*0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)\s+- (.+?)\s*$"
)


@pytest.fixture(scope="module")
def openssl_ciphers() -> list[dict]:
    """Every cipher ``openssl ciphers`` lists for the widest cipher string,
    as dicts with ``id``, ``standard_name``, ``description`` and the
    description's fields."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not on PATH")
    if openssl_binary_version() != icsssl.openssl_version():
        pytest.skip("the openssl command runs on another OpenSSL version")
    output = subprocess.run(
        [OPENSSL, "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    ).stdout
    listed = []
    for line in output.splitlines():
        match = _LISTING_LINE.match(line)
        assert match, f"unexpected openssl ciphers line: {line!r}"
        high, low, standard_name, description = match.groups()
        listed.append(
            {
                "id": int(high + low, 16),
                "standard_name": standard_name,
                "description": description,
                **description_fields(description),
            }
        )
    assert len(listed) > 100
    return listed


def test_table_has_every_listed_cipher(openssl_ciphers):
    known = {cipher.name for cipher in icsssl.all_ciphers()}
    listed = {cipher["name"] for cipher in openssl_ciphers}
    assert listed <= known


def test_table_size():
    ciphers = icsssl.all_ciphers()
    assert len(ciphers) > 100
    ids = [cipher.protocol_id for cipher in ciphers]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert len({cipher.name for cipher in ciphers}) == len(ciphers)


def test_fields_match_openssl_listing(openssl_ciphers):
    for listed in openssl_ciphers:
        cipher = icsssl.cipher_description(listed["name"])
        assert cipher.name == listed["name"]
        assert cipher.protocol_id == listed["id"], cipher.name
        assert cipher.standard_name == listed["standard_name"], cipher.name
        assert cipher.description.rstrip() == listed["description"], cipher.name
        assert cipher.version == listed["version"], cipher.name
        assert cipher.key_exchange == listed["Kx"], cipher.name
        assert cipher.authentication == listed["Au"], cipher.name
        assert cipher.encryption == listed["Enc"], cipher.name
        assert cipher.mac == listed["Mac"], cipher.name


def test_bits_match_encryption_field(openssl_ciphers):
    for listed in openssl_ciphers:
        cipher = icsssl.cipher_description(listed["id"])
        # Enc=AESGCM(128) gives the secret key size in brackets, and the
        # NULL ciphers have Enc=None.
        if listed["Enc"] == "None":
            assert cipher.secret_bits == 0, cipher.name
        else:
            match = re.search(r"\((\d+)\)$", listed["Enc"])
            assert match, listed["Enc"]
            assert cipher.secret_bits == int(match.group(1)), cipher.name
        assert cipher.total_bits >= cipher.secret_bits, cipher.name


def test_lookup_by_standard_name_and_id(openssl_ciphers):
    for listed in openssl_ciphers:
        by_name = icsssl.cipher_description(listed["name"])
        assert icsssl.cipher_description(listed["standard_name"]) == by_name
        assert icsssl.cipher_description(listed["id"]) == by_name


def test_known_cipher_fields():
    # RFC 5288 suite 0x009C: RSA key exchange, AES-128-GCM.
    cipher = icsssl.cipher_description("AES128-GCM-SHA256")
    assert cipher.protocol_id == 0x009C
    assert cipher.standard_name == "TLS_RSA_WITH_AES_128_GCM_SHA256"
    assert cipher.key_exchange == "RSA"
    assert cipher.authentication == "RSA"
    assert cipher.encryption == "AESGCM(128)"
    assert cipher.mac == "AEAD"
    tls13 = icsssl.cipher_description(0x1301)
    assert tls13.name == "TLS_AES_128_GCM_SHA256"
    assert tls13.version == "TLSv1.3"
    assert tls13.key_exchange == "any"
    assert tls13.authentication == "any"


@pytest.mark.parametrize("cipher", ["NO-SUCH-CIPHER", "", 0xFFFF, 0x0000])
def test_unknown_cipher_raises_key_error(cipher):
    with pytest.raises(KeyError) as raised:
        icsssl.cipher_description(cipher)
    expected_name = cipher if isinstance(cipher, str) else f"{cipher:#06x}"
    assert repr(expected_name) in str(raised.value)


@pytest.mark.parametrize(
    "cipher", [1.5, None, b"AES128-GCM-SHA256", True, ["AES128-GCM-SHA256"]]
)
def test_wrong_type_raises_type_error(cipher):
    with pytest.raises(TypeError) as raised:
        icsssl.cipher_description(cipher)
    assert repr(cipher) in str(raised.value)


@pytest.mark.parametrize("cipher", [-1, 0x10000])
def test_id_out_of_range_raises_value_error(cipher):
    with pytest.raises(ValueError) as raised:
        icsssl.cipher_description(cipher)
    assert f"{cipher:#x}" in str(raised.value)


def test_parse_description_real_lines(openssl_ciphers):
    for listed in openssl_ciphers:
        fields = icsssl.parse_description(listed["description"] + "\n")
        assert fields["name"] == listed["name"]
        assert fields["version"] == listed["version"]
        for key in ("Kx", "Au", "Enc", "Mac"):
            assert fields[key] == listed[key], (listed["name"], key)


@pytest.mark.parametrize(
    "line", ["", "   ", "AES128-GCM-SHA256", "AES128-GCM-SHA256 TLSv1.2 Kx"]
)
def test_parse_description_rejects_malformed(line):
    with pytest.raises(ValueError) as raised:
        icsssl.parse_description(line)
    assert repr(line) in str(raised.value)


# Run in a fresh interpreter so the cipher table is built by this call.
_TABLE_BUILD_SCRIPT = r"""
import json
import icsssl
icsssl.err_clear_error()
queued = int(icsssl.lib.icsssl_push_error(128, 0x1C1))
icsssl.cipher_description("AES128-GCM-SHA256")
print(json.dumps({"queued": queued, "after": icsssl.err_get_error(),
                  "then": icsssl.err_get_error()}))
"""


def test_table_build_keeps_caller_errors():
    package_parent = os.path.dirname(os.path.dirname(icsssl.__file__))
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [package_parent, environment.get("PYTHONPATH", "")]
    )
    completed = subprocess.run(
        [sys.executable, "-c", _TABLE_BUILD_SCRIPT],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT * 3,
        env=environment,
        # The checkout would shadow the installed package if it were the
        # working directory of "python -c".
        cwd=package_parent,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["after"] == result["queued"]
    assert result["then"] == 0
