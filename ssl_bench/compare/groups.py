"""Settings groups: what sets one group of runs apart from the others of its data set."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


_ABSENT = "<unset>"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return _ABSENT
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def describe_differences(df: pd.DataFrame) -> dict[str, str]:
    """For data sets with several settings groups: settings hash -> what sets it apart.

    E.g. ``{"1a2b3c4d": "image_size=32, iterations=800", "5e6f...": "image_size=64,
    iterations=400"}``. Data sets with a single group are left out.
    """
    configs = df.attrs.get("settings_configs", {})
    notes: dict[str, str] = {}
    for _, group in df.groupby("dataset", sort=True):
        hashes = sorted(group["settings"].unique())
        if len(hashes) < 2:
            continue
        if not all(h in configs for h in hashes):
            for h in hashes:
                notes[h] = "settings differ (configurations not available)"
            continue
        flat = {h: _flatten(configs[h]) for h in hashes}
        keys = sorted(set().union(*flat.values()))
        differing = [k for k in keys
                     if len({_show(flat[h].get(k, _ABSENT)) for h in hashes}) > 1]
        for h in hashes:
            notes[h] = ", ".join(f"{k}={_show(flat[h].get(k, _ABSENT))}" for k in differing)
    return notes
