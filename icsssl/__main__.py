"""``python -m icsssl``: the same as the ``icsssl`` command."""

import sys

from icsssl.cli import main

sys.exit(main())
