"""Build ``icsssl._openssl``, the cffi binding to the system OpenSSL.

The extension is out-of-line and in API mode: cffi writes a C file that
includes the OpenSSL headers, so macros and inline functions such as
``ERR_GET_LIB`` are reachable and every declaration is checked by the C
compiler.  It links the ``libssl``/``libcrypto`` found by the compiler, which
is usually the one stdlib ``ssl`` uses and usually *not* the one pyOpenSSL
runs on (see ``icsssl/_pyopenssl.py``).

The minimum OpenSSL is 3.0.  Functions added later are wrapped in C so the
module compiles everywhere, and a ``ICSSSL_HAS_*`` constant reports to Python
whether the real function is present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

CDEF = """
typedef ... SSL;
typedef ... SSL_CTX;
typedef ... SSL_CIPHER;
typedef ... SSL_METHOD;

#define OPENSSL_VERSION_NUMBER ...
static const int OPENSSL_VERSION;
static const int OPENSSL_BUILT_ON;
static const int OPENSSL_DIR;
static const int OPENSSL_MODULES_DIR;

static const int ERR_LIB_NONE;
static const int ERR_LIB_SYS;
static const int ERR_LIB_SSL;
static const int ERR_LIB_X509;
static const int ERR_LIB_PEM;
static const int ERR_LIB_EVP;
static const int ERR_LIB_USER;
static const unsigned long ERR_SYSTEM_FLAG;

static const uint64_t OPENSSL_INIT_LOAD_SSL_STRINGS;
static const uint64_t OPENSSL_INIT_LOAD_CRYPTO_STRINGS;

static const int ICSSSL_HAS_GET0_GROUP_NAME;

/* Error queue of this instance. */
unsigned long ERR_get_error(void);
unsigned long ERR_peek_error(void);
unsigned long ERR_peek_last_error(void);
void ERR_clear_error(void);
int ERR_set_mark(void);
int ERR_pop_to_mark(void);
void ERR_error_string_n(unsigned long e, char *buf, size_t len);
const char *ERR_lib_error_string(unsigned long e);
const char *ERR_reason_error_string(unsigned long e);
const char *ERR_func_error_string(unsigned long e);
int ERR_GET_LIB(unsigned long e);
int ERR_GET_REASON(unsigned long e);
int ERR_SYSTEM_ERROR(unsigned long e);
int icsssl_err_get_func(unsigned long e);
unsigned long icsssl_push_error(int lib, int reason);

/* Versions and initialisation. */
const char *OpenSSL_version(int type);
unsigned long OpenSSL_version_num(void);
int OPENSSL_init_ssl(uint64_t opts, const void *settings);

/* Ciphers. */
const SSL_METHOD *TLS_method(void);
SSL_CTX *SSL_CTX_new(const SSL_METHOD *method);
void SSL_CTX_free(SSL_CTX *ctx);
SSL *SSL_new(SSL_CTX *ctx);
void SSL_free(SSL *ssl);
const SSL_CIPHER *SSL_get_current_cipher(const SSL *ssl);
const SSL_CIPHER *SSL_CIPHER_find(SSL *ssl, const unsigned char *ptr);
char *SSL_CIPHER_description(const SSL_CIPHER *cipher, char *buf, int size);
const char *SSL_CIPHER_get_name(const SSL_CIPHER *cipher);
const char *SSL_CIPHER_standard_name(const SSL_CIPHER *cipher);
const char *SSL_CIPHER_get_version(const SSL_CIPHER *cipher);
int SSL_CIPHER_get_bits(const SSL_CIPHER *cipher, int *alg_bits);
uint32_t SSL_CIPHER_get_id(const SSL_CIPHER *cipher);
uint16_t SSL_CIPHER_get_protocol_id(const SSL_CIPHER *cipher);
size_t icsssl_all_ciphers(SSL *ssl, const SSL_CIPHER **out, size_t size);

/* Connection state, used only on an SSL* of this instance. */
const char *SSL_get_version(const SSL *ssl);
const char *SSL_state_string_long(const SSL *ssl);
long SSL_get_verify_result(const SSL *ssl);
const char *X509_verify_cert_error_string(long n);
const char *SSL_alert_desc_string_long(int value);
long SSL_get_negotiated_group(SSL *ssl);
const char *SSL_group_to_name(SSL *ssl, int id);
const char *icsssl_get0_group_name(SSL *ssl);
void icsssl_silence_info_callback(SSL *ssl);
int SSL_get_peer_signature_type_nid(const SSL *ssl, int *pnid);
long SSL_get_peer_signature_nid(SSL *ssl, int *pnid);
const char *OBJ_nid2sn(int n);
"""

C_SOURCE = """
#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "icsssl needs OpenSSL 3.0 or newer"
#endif

#if OPENSSL_VERSION_NUMBER >= 0x30200000L
static const int ICSSSL_HAS_GET0_GROUP_NAME = 1;
static const char *icsssl_get0_group_name(SSL *ssl)
{
    return SSL_get0_group_name(ssl);
}
#else
static const int ICSSSL_HAS_GET0_GROUP_NAME = 0;
static const char *icsssl_get0_group_name(SSL *ssl)
{
    (void)ssl;
    return NULL;
}
#endif

/* An info callback that does nothing: set on a connection, it hides the
 * connection from its context's info callback. */
static void icsssl_ignore_info(const SSL *ssl, int where, int value)
{
    (void)ssl;
    (void)where;
    (void)value;
}

static void icsssl_silence_info_callback(SSL *ssl)
{
    SSL_set_info_callback(ssl, icsssl_ignore_info);
}

/* OpenSSL 3 packs no function code; ERR_GET_FUNC is gone or always 0. */
static int icsssl_err_get_func(unsigned long e)
{
    (void)e;
    return 0;
}

/* Queue one error and return its packed code, as ERR_raise() does. */
static unsigned long icsssl_push_error(int lib, int reason)
{
    ERR_raise(lib, reason);
    return ERR_peek_last_error();
}

/*
 * Store every cipher this libssl knows, found by trying each two-byte
 * IANA id.  A cipher string such as "ALL:COMPLEMENTOFALL" misses a few
 * that SSL_CIPHER_find() still finds.
 */
static size_t icsssl_all_ciphers(SSL *ssl, const SSL_CIPHER **out,
                                 size_t size)
{
    size_t count = 0;
    unsigned int id;
    unsigned char bytes[2];

    for (id = 0; id <= 0xFFFF && count < size; id++) {
        const SSL_CIPHER *cipher;

        bytes[0] = (unsigned char)(id >> 8);
        bytes[1] = (unsigned char)(id & 0xFF);
        cipher = SSL_CIPHER_find(ssl, bytes);
        if (cipher != NULL)
            out[count++] = cipher;
    }
    return count;
}
"""

MISSING_HEADERS = (
    "icsssl: the OpenSSL headers (openssl/ssl.h) were not found; install "
    "libssl-dev (Debian, Ubuntu) or openssl-devel (Fedora, RHEL), then "
    "build again"
)


def _compiler() -> list[str]:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return compiler.split()


def check_headers() -> None:
    """Exit with one line naming the package to install if the OpenSSL
    headers are missing.

    cffi's own failure would be a page of compiler output that never names
    the package that provides ``openssl/ssl.h``.
    """
    command = _compiler()
    if shutil.which(command[0]) is None:
        return  # Let the build report the missing compiler itself.
    cflags = os.environ.get("CFLAGS", "").split()
    cppflags = os.environ.get("CPPFLAGS", "").split()
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.c")
        with open(source, "w") as handle:
            handle.write("#include <openssl/ssl.h>\n")
        result = subprocess.run(
            [*command, *cppflags, *cflags, "-E", source],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    if result.returncode != 0:
        sys.exit(MISSING_HEADERS)


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "icsssl._openssl",
    C_SOURCE,
    libraries=["ssl", "crypto"],
)

check_headers()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
