"""What ``ssl-bench predict`` predicts on: an image file, a folder of images or a CSV.

Each becomes a list of :class:`Image` (the path as the user gave it, for the output, and
the file to read). A folder gives its image files (by suffix, sorted by name, not
recursive); a CSV gives the paths in one column, relative ones resolved against the
CSV's folder or ``image_root``. Every listed file must exist before anything is decoded,
so a typo in row 9,000 is reported at once, naming the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ssl_bench.core.errors import UserError

__all__ = ["IMAGE_SUFFIXES", "Image", "collect_images"]

#: The suffixes a folder's image files have (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class Image:
    """One image to predict: ``name`` as given (a CSV cell, a path), ``path`` to read."""

    name: str
    path: Path


def collect_images(source: str | Path, image_column: str = "image",
                   image_root: str | Path | None = None) -> list[Image]:
    """The images ``source`` names: itself (an image file), the image files of a folder,
    or the paths in ``image_column`` of a ``.csv`` file."""
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such file or folder")
    if path.is_dir():
        if image_root is not None:
            raise UserError("--image-root applies to a CSV input, not to a folder")
        return _folder(path)
    if path.suffix.lower() == ".csv":
        return _csv(path, image_column, Path(image_root) if image_root is not None else None)
    if image_root is not None:
        raise UserError("--image-root applies to a CSV input, not to an image file")
    return [Image(str(source), path)]


def _folder(folder: Path) -> list[Image]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it")
    return [Image(str(p), p) for p in files]


def _csv(table: Path, column: str, root: Path | None) -> list[Image]:
    base = root if root is not None else table.parent
    if root is not None and not root.is_dir():
        raise UserError(f"--image-root {root}: no such folder")
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if column not in header:
                raise UserError(f"{table}: no column {column!r} (columns: "
                                f"{', '.join(header) or 'none'}); pass --image-column")
            images = []
            for row in reader:
                line = reader.line_num
                value = (row.get(column) or "").strip()
                if not value:
                    raise UserError(f"{table}, line {line}: empty {column!r} cell")
                path = Path(value) if Path(value).is_absolute() else base / value
                if not path.is_file():
                    raise UserError(f"{table}, line {line}: image {value}: "
                                    f"{'is not a file' if path.exists() else 'missing file'}"
                                    f" ({path})")
                images.append(Image(value, path))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{table}: not a readable CSV ({exc})") from None
    if not images:
        raise UserError(f"{table}: no rows below the header")
    return images
