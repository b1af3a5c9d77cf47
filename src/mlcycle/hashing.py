"""Content hashes of files and folders: what a content id is, with no store attached.

An artifact's id is the sha256 over the sorted (relative path, file sha256)
pairs of its folder (:func:`hash_dir`). The store names committed folders by it
and a bundle verifies itself against it; both read it here, so checking a
bundle folder does not import the store (SQLAlchemy, fsspec).

Example:
    >>> content_id, size = hash_dir(Path("bundle"))
    >>> len(content_id), hash_file(Path("bundle/meta.json"))[:8]
    (64, '3f2a9c1e')
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def hash_file(path: Path) -> str:
    """The sha256 of a file's bytes, as hex (read in 1 MiB chunks).

    Example:
        >>> hash_file(Path("data/flights.parquet"))[:8]
        '9b1c44d0'
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def hash_dir(folder: Path) -> tuple[str, int]:
    """The content id of a folder and its total size in bytes.

    Example:
        >>> hash_dir(Path("bundle"))[0] == Path("bundle").resolve().name  # a store folder
        True
    """
    digest = hashlib.sha256()
    size = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode() + b"\0" + hash_file(path).encode() + b"\n")
        size += path.stat().st_size
    return digest.hexdigest(), size
