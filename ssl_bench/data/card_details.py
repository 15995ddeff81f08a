"""What ``ssl-bench list --datasets NAME`` adds below a data set's card, where the card
alone cannot say it: for ``medmnist``, each set's description, licence and official part
sizes from the installed ``medmnist`` package's ``INFO``.

Kept apart from the data set modules so that listing one card imports no numpy or torch
(``tests/test_startup.py``); the ``medmnist`` package is imported only when it is installed
and its card is asked for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any


def package_info(flag: str) -> dict[str, Any] | None:
    """What the installed ``medmnist`` package's ``INFO`` says of ``flag`` (its
    description, licence and official part sizes), or None without the package."""
    if importlib.util.find_spec("medmnist") is None:
        return None
    from medmnist.info import INFO, __version__

    entry = INFO.get(flag, {})
    return {"version": __version__, "description": entry.get("description", ""),
            "licence": entry.get("license", ""), "n_samples": dict(entry.get("n_samples", {}))}


def medmnist_details(flags: Sequence[str]) -> list[str]:
    """One line per MedMNIST set from the package's ``INFO``, or how to get it."""
    lines = []
    for flag in flags:
        info = package_info(flag)
        if info is None:
            return ["medmnist package INFO (each set's description, licence and official "
                    "part sizes): pip install 'ssl-bench[medmnist]'"]
        sizes = ", ".join(f"{part} {n}" for part, n in info["n_samples"].items())
        lines.append(f"{flag} (medmnist {info['version']} INFO; {info['licence']}; {sizes}): "
                     f"{info['description']}")
    return lines


#: Data set name -> its extra card lines, given the choices of its options by name.
CARD_DETAILS: dict[str, Callable[[dict[str, Sequence[str]]], list[str]]] = {
    "medmnist": lambda choices: medmnist_details(choices.get("flag", ())),
}
