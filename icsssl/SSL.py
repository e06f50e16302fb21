"""Drop-in for :mod:`OpenSSL.SSL` with icsssl's ``Connection`` and
``Context``.

``from icsssl import SSL`` gives every public name of ``OpenSSL.SSL`` as
the very same object (so ``except SSL.Error`` still catches pyOpenSSL's
exceptions), except ``Connection`` and ``Context``, which are
:class:`icsssl.Connection` and :class:`icsssl.Context`, subclasses of
pyOpenSSL's.  ``CertificateLoadError`` is added; it subclasses
``SSL.Error``.
"""

from __future__ import annotations

from typing import Any

import OpenSSL.SSL as _parent

from icsssl.connection import Connection as _IcsConnection
from icsssl.context import CertificateLoadError  # noqa: F401 - exported
from icsssl.context import Context as _IcsContext

_names = [name for name in vars(_parent) if not name.startswith("_")]
globals().update({name: getattr(_parent, name) for name in _names})
globals()["Connection"] = _IcsConnection
globals()["Context"] = _IcsContext

__all__ = sorted(
    set(getattr(_parent, "__all__", _names))
    | {"Connection", "Context", "CertificateLoadError"}
)


def __getattr__(name: str) -> Any:
    # Names pyOpenSSL adds later, or creates on access, resolve there too.
    return getattr(_parent, name)
