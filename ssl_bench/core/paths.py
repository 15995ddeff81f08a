"""Where ssl-bench keeps what it can rebuild: decoded images and the registry index."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$SSL_BENCH_CACHE``, else ``$XDG_CACHE_HOME/ssl-bench``, else ``~/.cache/ssl-bench``."""
    if os.environ.get("SSL_BENCH_CACHE"):
        return Path(os.environ["SSL_BENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ssl-bench"
