"""``python -m eventindex.cli``: the same as the ``eventindex`` command."""

import sys

from .main import main

sys.exit(main())
