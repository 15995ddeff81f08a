"""CSV helpers shared by the file-based data set loaders.

Every table is read as text (``dtype=str``, nothing turned into NaN) and indexed by the
*row number a person sees in the file*: the header is row 1, so the first data row is
row 2. Blank lines keep their number and are dropped. Every check raises
:class:`~ssl_bench.core.errors.UserError` naming the file, and the row(s) where relevant.

Row-level problems (a missing or invalid label, an empty id) raise :class:`BadRows`, which
carries every offending row. :func:`skip_bad_rows` calls a data set factory again with
those rows left out (by :func:`read_table`, inside :func:`skipping_bad_rows`), so any
loader built on these helpers supports ``--skip-bad-rows`` without code of its own.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ssl_bench.core.errors import UserError

#: How many offending rows or values an error message lists before "and N more".
MAX_LISTED = 5
#: How many times :func:`skip_bad_rows` calls a factory before giving up.
MAX_PASSES = 20
#: Ends the message of every :class:`BadRows`.
SKIP_HINT = "pass --skip-bad-rows to leave such rows out"

T = TypeVar("T")


class BadRows(UserError):
    """Rows of a CSV file whose values are unusable; ``--skip-bad-rows`` may leave them out.

    ``rows`` holds *every* offending human row number (the message lists a few) and
    ``reasons`` a short reason per row. Ambiguous problems (duplicated ids) and problems
    of the whole file (missing columns, no rows) are plain :class:`UserError` instead.
    """

    def __init__(self, detail: str, path: Path, rows: Iterable[int],
                 reason: str | Sequence[str]) -> None:
        self.detail = detail
        self.path = Path(path)
        self.rows = [int(row) for row in rows]
        reasons = [reason] * len(self.rows) if isinstance(reason, str) else list(reason)
        if len(reasons) != len(self.rows):
            raise ValueError(f"{len(reasons)} reasons for {len(self.rows)} rows")
        self.reasons: dict[int, str] = dict(zip(self.rows, reasons, strict=True))
        super().__init__(f"{detail}; {SKIP_HINT}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes despite __init__
        return (type(self), (self.detail, self.path, self.rows,
                             [self.reasons[row] for row in self.rows]))


#: Resolved CSV path -> human rows that :func:`read_table` leaves out (None: keep all).
_DROPPED: ContextVar[Mapping[Path, frozenset[int]] | None] = ContextVar(
    "ssl_bench_dropped_rows", default=None)


def _key(path: Path) -> Path:
    return Path(path).expanduser().resolve()


@contextmanager
def skipping_bad_rows(rows: Mapping[Path, Iterable[int]]) -> Iterator[None]:
    """While active, :func:`read_table` leaves out ``rows[path]`` (human row numbers)."""
    token = _DROPPED.set({_key(path): frozenset(int(r) for r in drop)
                          for path, drop in rows.items()})
    try:
        yield
    finally:
        _DROPPED.reset(token)


def skip_bad_rows(build: Callable[[], T],
                  max_passes: int = MAX_PASSES) -> tuple[T, list[dict[str, Any]]]:
    """``build()`` with the rows its :class:`BadRows` name left out, and those rows.

    A check stops at its first problem, so ``build`` is called again after each
    :class:`BadRows` with the rows found so far left out; every pass must name a new row.
    The rows come back as ``{"file", "row", "reason"}`` records, sorted by file and row.
    """
    dropped: dict[Path, dict[int, str]] = {}
    last = ""
    for _ in range(max_passes):
        with skipping_bad_rows(dropped):
            try:
                result = build()
            except BadRows as exc:
                known = dropped.setdefault(_key(exc.path), {})
                new = {row: why for row, why in exc.reasons.items() if row not in known}
                if not new:  # rows not read through read_table: nothing can leave them out
                    raise UserError(f"{exc.detail} (--skip-bad-rows could not leave these rows "
                                    "out: the data set reads the file without read_table)"
                                    ) from None
                known.update(new)
                last = exc.detail
                continue
        records = [{"file": str(path), "row": row, "reason": why}
                   for path in sorted(dropped) for row, why in sorted(dropped[path].items())]
        return result, records
    count = sum(len(rows) for rows in dropped.values())
    raise UserError(f"--skip-bad-rows gave up after {max_passes} passes ({count} rows left out "
                    f"so far); the last problem: {last}")


def require_root(root: Path | None, name: str, title: str, layout: str, source: str) -> Path:
    """The data set's folder, resolved; a missing one names the layout and the source."""
    if root is None:
        raise UserError(
            f"data set {name!r} needs its folder: pass --data-root DIR or set SSL_BENCH_DATA. "
            f"{layout[0].upper()}{layout[1:]}; {source}"
        )
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{title} data folder {root} does not exist; {layout}")
    return root


def listing(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """``"a, b, c"`` or ``"a, b, c, ... and 7 more"``."""
    shown = ", ".join(str(item) for item in items[:limit])
    if len(items) > limit:
        shown += f", ... and {len(items) - limit} more"
    return shown


def rows_text(rows: Sequence[int]) -> str:
    """``"row 3"`` or ``"rows 3, 7"`` (human row numbers)."""
    return ("row " if len(rows) == 1 else "rows ") + listing([int(r) for r in rows])


def read_table(path: Path, what: str = "CSV file") -> pd.DataFrame:
    """Read a CSV file as stripped text, indexed by human row number (first data row = 2).

    Raises :class:`UserError` when the file is missing, unreadable, malformed or has no
    data rows. Column names are stripped of spaces and a UTF-8 byte-order mark. Inside
    :func:`skipping_bad_rows`, the rows listed for this file are left out.
    """
    path = Path(path)
    if not path.is_file():
        where = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"{what} {path} {where}")
    try:
        table = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            index_col=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise UserError(f"{what} {path} is empty (no header and no rows)") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{what} {path} is not a valid CSV file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None
    table = table.fillna("")  # short rows leave NaN even with keep_default_na=False
    table.columns = [str(column).strip() for column in table.columns]
    table.index = pd.RangeIndex(2, len(table) + 2)
    dropping = _DROPPED.get()
    left_out = dropping.get(_key(path), frozenset()) if dropping else frozenset()
    if left_out:
        table = table.loc[~table.index.isin(sorted(left_out))]
    if len(table.columns):
        blank = (table == "").all(axis=1)
        if blank.any():
            table = table.loc[~blank.to_numpy()]
    if table.empty:
        after = f" left after leaving out {len(left_out)} bad rows" if left_out else ""
        raise UserError(f"{what} {path} has a header but no data rows{after}")
    return table


def require_columns(table: pd.DataFrame, path: Path, columns: Iterable[str]) -> None:
    """Raise naming every missing column (and the columns that are there)."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        names = ", ".join(repr(column) for column in missing)
        found = ", ".join(repr(column) for column in table.columns)
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, list(table.columns), n=1)
            if close:
                hints.append(f"{close[0]!r} for {column!r}?")
        hint = f" (did you mean {' '.join(hints)})" if hints else ""
        plural = "s" if len(missing) > 1 else ""
        raise UserError(f"{path}: missing column{plural} {names}{hint}; its columns are {found}")


def text_column(table: pd.DataFrame, path: Path, column: str, what: str = "") -> pd.Series:
    """Column ``column`` stripped of spaces; empty cells raise :class:`BadRows`."""
    values = table[column].str.strip()
    empty = values == ""
    if empty.any():
        label = what or f"column {column!r}"
        rows = values.index[empty]
        raise BadRows(f"{path}: {label} is empty in {rows_text(rows)}", path, rows,
                      f"{label} is empty")
    return values


#: Cell values that mean "no value" in CSV files written by pandas, R, Excel and people.
MISSING_LIKE: frozenset[str] = frozenset(
    {"nan", "na", "n/a", "nat", "none", "null", "missing", "?", "-", "--", "#n/a"})


def check_not_missing(values: pd.Series, path: Path, what: str) -> None:
    """Raise :class:`BadRows` naming rows whose value is a missing-value marker (``NaN``...).

    Tables are read as text, so such a cell would otherwise become a class of its own.
    """
    missing = values.str.lower().isin(MISSING_LIKE)
    if missing.any():
        shown = sorted(set(values[missing]))
        raise BadRows(f"{path}: {what} is missing ({', '.join(map(repr, shown))}) in "
                      f"{rows_text(values.index[missing])}", path, values.index[missing],
                      [f"{what} is missing ({value!r})" for value in values[missing]])


def check_unique(values: pd.Series, path: Path, what: str) -> None:
    """Raise naming every duplicated value and the rows it appears in."""
    duplicated = values.duplicated(keep=False)
    if not duplicated.any():
        return
    rows_of = values[duplicated].groupby(values[duplicated], sort=False).groups
    described = [f"{value!r} ({rows_text(list(rows))})" for value, rows in rows_of.items()]
    raise UserError(f"{path}: duplicate {what}: {listing(described)}")


def binary_matrix(
    table: pd.DataFrame, path: Path, columns: Sequence[str], ids: pd.Series | None = None
) -> np.ndarray:
    """Columns of 0/1 values (``0``, ``1``, ``0.0``, ``1.0``) as a float32 ``(N, K)`` array.

    An empty, non-numeric or other value raises :class:`BadRows` naming the row, column and
    value (and the image id when ``ids`` is given).
    """
    text = table[list(columns)].apply(lambda column: column.str.strip())
    numbers = text.apply(pd.to_numeric, errors="coerce")
    values = numbers.to_numpy(dtype=np.float64)
    bad = ~np.isin(values, (0.0, 1.0))  # NaN (empty or not a number) is bad too
    if bad.any():
        def problem(r: int, c: int) -> str:
            raw = text.iat[r, c]
            if raw == "":
                return f"{columns[c]!r} is empty"
            if np.isnan(values[r, c]):
                return f"{columns[c]!r} is not a number ({raw!r})"
            return f"{columns[c]!r} is {raw!r}"

        positions = np.argwhere(bad)
        described = []
        for r, c in positions[:MAX_LISTED]:
            image = f", image {ids.iat[r]!r}" if ids is not None else ""
            described.append(f"row {table.index[r]}{image}: {problem(r, c)}")
        more = f" ... and {len(positions) - MAX_LISTED} more" if len(positions) > MAX_LISTED else ""
        bad_rows = np.flatnonzero(bad.any(axis=1))
        reasons = ["label " + ", ".join(problem(r, c) for c in np.flatnonzero(bad[r]))
                   for r in bad_rows]
        raise BadRows(f"{path}: label values must be 0 or 1; {'; '.join(described)}{more}",
                      path, table.index[bad_rows], reasons)
    return values.astype(np.float32)


def sources(path: Path, table: pd.DataFrame) -> list[str]:
    """``"<file name> row <n>"`` for every row of ``table``."""
    name = Path(path).name
    return [f"{name} row {row}" for row in table.index]


def natural_key(text: str) -> tuple:
    """Sort key putting ``"2"`` before ``"10"`` and ``"img2"`` before ``"img10"``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", text)
        if part != ""
    )


def natural_sorted(values: Iterable[str]) -> list[str]:
    return sorted(values, key=natural_key)
