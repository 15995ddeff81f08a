"""``python -m ssl_bench`` is the same as the ``ssl-bench`` command."""

import sys

from .cli import main

sys.exit(main())
