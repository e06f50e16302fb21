"""Build script: compiles the cffi module declared in ``build_ffi.py``.

The metadata lives in ``pyproject.toml``; setuptools reads it from there.
"""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
