"""Run configuration, lowest first: ``settings`` (how a setting is declared), ``checks``
(validation read from the declarations), ``run_config`` (``RunConfig`` and the derived
tables), ``resolve`` (defaults < preset < method defaults < file < flags) and ``budget``
(steps, labeled exposure, early stopping)."""
