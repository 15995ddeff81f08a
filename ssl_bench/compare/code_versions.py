"""Which code (and processor) produced each run, and a warning where one comparison mixes
several.

A comparison is fair only if every method ran on the same engine code; runs made
between two edits differ in code even when their settings agree. A run's code is the
digest of its engine and method sources (``environment.code.digest``, recorded since
issue 27); older runs only recorded their git commit and whether the tree had
uncommitted changes, and a run from such a tree cannot be matched to any other.

Processors matter too: CPUs of different makers (an Intel Xeon and an AMD EPYC) round
floating point differently, so the same run diverges from its first steps on each (the
fair-20pct runs of 001c1d7 and their re-run from that commit differ at step 40). That is
noise, not bias, but a comparison across processors is not the exact re-run it looks like.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

#: How many code versions a warning names before it counts the rest.
SHOWN = 3


def _field(record: Any, key: str) -> dict[str, Any]:
    """``record[key]`` where both are objects (a hand-edited record may hold anything)."""
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, dict) else {}


def code_version(document: Any) -> tuple[str, bool]:
    """``(label, verifiable)`` of a run's ``config.json``: its code digest when recorded,
    else its commit (``verifiable`` false for a tree with uncommitted changes or none)."""
    environment = _field(document, "environment")
    code = _field(environment, "code")
    if code.get("digest"):
        return f"code {code['digest']}", True
    git = _field(environment, "git")
    commit = str(git.get("commit") or "")[:12]
    if not commit:
        return "unknown code", False
    if git.get("dirty"):
        return f"commit {commit} with uncommitted changes", False
    return f"commit {commit}", True


def mixed_code_warnings(groups: Iterable[tuple[str, list[tuple[str, bool]]]]) -> list[str]:
    """One warning per group (``name``, the code version of each of its runs) that mixes
    code versions or holds runs whose code cannot be verified."""
    out = []
    for name, versions in groups:
        counts = Counter(label for label, _ in versions)
        unverified = sum(1 for _, verifiable in versions if not verifiable)
        if len(counts) < 2 and not unverified:
            continue
        shown = ", ".join(f"{label} ({n} run{'s' * (n != 1)})"
                          for label, n in counts.most_common(SHOWN))
        more = f" and {len(counts) - SHOWN} more" if len(counts) > SHOWN else ""
        problem = (f"mixes {len(counts)} code versions" if len(counts) > 1
                   else "comes from one tree with uncommitted changes")
        out.append(f"{name} {problem}: {shown}{more}; differences between methods may "
                   f"come from the code rather than the method"
                   + (f" ({unverified} run(s) from trees with uncommitted changes and no "
                      "code digest)" if unverified else "")
                   + "; re-run them from one clean commit")
    return out


def processor(document: Any) -> str:
    """The processor a run's ``config.json`` records (``"unknown processor"`` if none)."""
    return str(_field(document, "environment").get("processor") or "unknown processor")


def mixed_processor_warnings(groups: Iterable[tuple[str, list[str]]]) -> list[str]:
    """One warning per group (``name``, each run's processor) whose runs ran on more than
    one kind of processor."""
    out = []
    for name, processors in groups:
        counts = Counter(processors)
        if len(counts) > 1:
            shown = ", ".join(f"{label} ({n} run{'s' * (n != 1)})"
                              for label, n in counts.most_common())
            out.append(f"{name} ran on {len(counts)} kinds of processor: {shown}; their "
                       "floating point differs, so a run does not repeat exactly on another")
    return out
