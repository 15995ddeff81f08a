"""Built-in SSL methods, one module each; importing a module registers its method.

This folder installs as ``ssl_bench.methods`` (``pyproject.toml``'s package-dir), never as a
top-level ``methods``: imported under that name from a checkout, it refuses with the name
to use, rather than registering every method a second time.
"""

if __name__ != "ssl_bench.methods":
    raise ImportError(f"the built-in methods are ssl_bench.methods, not {__name__!r}: "
                      "write e.g. 'from ssl_bench.methods.mt import MeanTeacher' (and "
                      "install the checkout with pip install -e .)")
