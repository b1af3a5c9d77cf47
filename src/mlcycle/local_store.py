"""Where a project's default store keeps its files, and a registry lookup without SQLAlchemy.

The store (``store/``) writes its SQLite database and artifact folders under
``.mlcycle/`` next to the spec; the names are spelled here, once. Commands that
only read the registry of such a project (`mlcycle models list`, resolving
``flights@champion`` for `mlcycle predict`) read the database with the standard
library's :mod:`sqlite3`: importing SQLAlchemy, the store and the project costs
a quarter of a 10-row prediction. Anything this lookup cannot settle (a server
database, remote artifacts, an unknown name) is left to the registry, which
says what is wrong.

Example:
    >>> found = lookup_bundle(Path("."), "flights@champion")
    >>> found.version, found.folder.name == found.bundle_id
    (3, True)
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

STORE_DIR = ".mlcycle"
DB_FILE = "mlcycle.db"
ARTIFACTS_DIR = "artifacts"
#: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS``, ``NAME/3`` or ``NAME``.
# The largest version a registry holds (its version column is a 32-bit INTEGER on
# PostgreSQL); a larger number names no version, and must not reach the database.
MAX_VERSION = 2**31 - 1
MODEL_REF_RE = re.compile(
    r"^(?:models:/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:(?:@(?P<alias>[^/@]+))|(?:/(?P<version>\d+)))?$"
)


def artifact_dest(root: str, artifact_id: str) -> str:
    """Where the artifact store keeps an artifact's folder under ``root``.

    Example:
        >>> artifact_dest(".mlcycle/artifacts", "3f2a9c")
        '.mlcycle/artifacts/3f/3f2a9c'
    """
    return f"{root}/{artifact_id[:2]}/{artifact_id}"


def local_db(base: Path) -> Path | None:
    """The project's SQLite registry when the store is the default local one, else ``None``.

    ``None`` too when ``MLCYCLE_STORE_URL`` or ``MLCYCLE_ARTIFACTS_URL`` point
    elsewhere, or when the database does not exist yet.

    Example:
        >>> local_db(Path("."))
        PosixPath('.mlcycle/mlcycle.db')
    """
    if os.environ.get("MLCYCLE_STORE_URL") or os.environ.get("MLCYCLE_ARTIFACTS_URL"):
        return None
    db = base / STORE_DIR / DB_FILE
    return db if db.is_file() else None


@dataclass(frozen=True)
class LocalBundle:
    """A registered version found in the local registry: its bundle id and folder."""

    name: str
    version: int
    bundle_id: str
    folder: Path


def lookup_bundle(base: Path, ref: str) -> LocalBundle | None:
    """The bundle ``ref`` names in the local store of the project in ``base``, if it is plain.

    ``None`` whenever the registry itself should answer: another store, no
    database, a reference that does not parse, a name, alias or version that
    is not there, a missing folder. The folder is not verified here.

    Example:
        >>> lookup_bundle(Path("."), "models:/flights/2").version
        2
    """
    db = local_db(base)
    match = MODEL_REF_RE.match(ref.strip())
    if db is None or match is None:
        return None
    name, alias, number = match.group("name"), match.group("alias"), match.group("version")
    if number is not None and not 1 <= int(number) <= MAX_VERSION:
        return None
    try:
        lite = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        if number is None:
            row = lite.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?",
                (name, alias or "champion"),
            ).fetchone()
            if row is None:
                return None
            number = row[0]
        found = lite.execute(
            "SELECT bundle_id FROM model_versions WHERE name = ? AND version = ?",
            (name, int(number)),
        ).fetchone()
    except sqlite3.Error:  # an old or damaged database: the registry explains
        return None
    finally:
        lite.close()
    if found is None:
        return None
    bundle_id = str(found[0])
    folder = Path(artifact_dest(str(base / STORE_DIR / ARTIFACTS_DIR), bundle_id))
    return LocalBundle(name, int(number), bundle_id, folder) if folder.is_dir() else None
