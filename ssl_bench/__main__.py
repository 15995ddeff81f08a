"""``python -m ssl_bench`` is the same as the ``ssl-bench`` command."""

import sys

from ssl_bench.cli.main import main

sys.exit(main())
