"""ssl-bench: benchmarking semi-supervised learning for medical image classification."""

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import (
    create_dataset,
    create_method,
    list_datasets,
    list_methods,
    register_dataset,
    register_method,
)

__version__ = "0.1.0"

__all__ = [
    "UserError",
    "create_dataset",
    "create_method",
    "list_datasets",
    "list_methods",
    "register_dataset",
    "register_method",
    "__version__",
]
