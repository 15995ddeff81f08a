"""Run configuration: the settings, presets, TOML files, their checks and the budget."""
