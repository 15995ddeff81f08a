"""Run folders: one self-describing directory per run, its lock and checkpoint integrity."""
