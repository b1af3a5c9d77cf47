"""Content-addressed artifact files through fsspec (a local folder by default).

An artifact is a folder of files. Its id is the sha256 over the sorted
(relative path, file sha256) pairs, so the same content always gets the same
id and a finished artifact is never rewritten. Writers fill a staging folder on
local disk; :meth:`BlobStore.commit` hashes it and moves it into place — a
rename on a local store (atomic), an upload followed by a ``_COMPLETE`` marker
on object storage, so a reader never sees a half-written artifact. A staging
folder's name carries its writer's pid; opening a store sweeps those whose
writer died (:mod:`mlcycle.store.owners`).

On object storage (``s3://bucket/prefix``, see :mod:`mlcycle.store.remote`)
opening a store checks the bucket once, and every failure of the backend
(unreachable endpoint, refused credentials, a missing bucket, a refused
write) is a :class:`~mlcycle.errors.StorageUnavailable` naming the URL. A
file of at least two parts is uploaded in parts (S3 multipart); the part size
is s3fs's ``default_block_size`` (50 MiB, set with fsspec's config, e.g.
``FSSPEC_S3='{"default_block_size": 8388608}'``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from mlcycle.errors import NotFound
from mlcycle.hashing import hash_dir, hash_file  # noqa: F401 (moved there; still importable here)
from mlcycle.local_store import artifact_dest
from mlcycle.store.owners import owner_tag, sweep_orphans
from mlcycle.store.remote import check_reachable, filesystem, storage_error

_MARKER = "_COMPLETE"
STAGING_PREFIX = "stage-"


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, racing threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


#: The mode of a committed artifact folder: what ``mkdir`` gives under the umask.
FOLDER_MODE = 0o777 & ~_umask()


class BlobStore:
    """Artifact folders under ``root`` (a path or an fsspec URL)."""

    def __init__(self, root: str, cache_dir: Path) -> None:
        self.url = root
        self.fs, self.root = filesystem(root)
        self.local = self.fs.protocol in ("file", "local") or self.fs.protocol == (
            "file",
            "local",
        )
        self.cache_dir = cache_dir
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.staging_root = Path(self.root) / ".staging"
        else:
            # A missing bucket or an unreachable endpoint stops here, before any work.
            check_reachable(self.fs, self.root, root)
            self.staging_root = cache_dir / ".staging"
        self.staging_root.mkdir(parents=True, exist_ok=True)
        # A writer killed mid-write (kill -9) leaves its staging folder: sweep those
        # whose owner is gone, each time a store is opened.
        sweep_orphans(self.staging_root, STAGING_PREFIX)

    def _dest(self, artifact_id: str) -> str:
        return artifact_dest(self.root, artifact_id)

    def new_staging(self) -> Path:
        """A fresh, empty local folder for a writer to fill (same filesystem as the store)."""
        prefix = f"{STAGING_PREFIX}{owner_tag()}-"  # the owner's pid, for the sweep
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.staging_root))

    def commit(self, staging: Path) -> tuple[str, int]:
        """Move a filled staging folder into place; return (artifact id, size)."""
        artifact_id, size = hash_dir(staging)
        if self.exists(artifact_id):
            shutil.rmtree(staging, ignore_errors=True)
            return artifact_id, size
        dest = self._dest(artifact_id)
        if self.local:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            # mkdtemp made the folder owner-only (and so the subfolders writers swap in
            # atomically, e.g. a bundle's onnx/ and native/); an artifact is as readable
            # as any folder this user makes (a serving image's other user reads bundles).
            for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
                os.chmod(folder, FOLDER_MODE)
            try:
                os.rename(staging, dest)
            except OSError:
                # Another process committed the same content first: theirs is identical.
                if not Path(dest).is_dir():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        else:
            try:
                self._upload(staging, dest)
            except Exception as exc:  # each backend raises its own kinds
                # Files already uploaded stay invisible (no marker): a retry rewrites them.
                raise storage_error(self.url, exc, "write an artifact to", self.fs) from None
            shutil.rmtree(staging, ignore_errors=True)
        return artifact_id, size

    def _upload(self, staging: Path, dest: str) -> None:
        """Upload a staging folder's files, then the marker that makes them an artifact."""
        options: dict[str, int] = {}
        part = getattr(self.fs, "default_block_size", None)
        if "s3" in _protocols(self.fs) and isinstance(part, int):
            # s3fs uploads in parts of 50 MiB whatever its configured block size; passing
            # it makes the configured size the part size (S3 allows 5 MiB and up).
            options["chunksize"] = max(part, 5 * 2**20)
        self.fs.put(str(staging), dest, recursive=True, **options)
        # An S3 client may not have the new keys in its listing cache: ours must.
        self.fs.invalidate_cache(dest)
        with self.fs.open(f"{dest}/{_MARKER}", "wb") as fh:
            fh.write(b"")

    def exists(self, artifact_id: str) -> bool:
        dest = self._dest(artifact_id)
        if self.local:
            return Path(dest).is_dir()
        marker = f"{dest}/{_MARKER}"
        try:
            # Another machine may have written it since this process last listed there.
            self.fs.invalidate_cache(dest)
            return bool(self.fs.exists(marker))
        except Exception as exc:
            raise storage_error(self.url, exc, "read", self.fs) from None

    def path(self, artifact_id: str) -> Path:
        """A local folder holding the artifact (downloaded once for remote stores)."""
        if not self.exists(artifact_id):
            raise NotFound(
                f"artifact {artifact_id[:12]} has no files in {self.url}",
                "its folder was deleted or never finished writing",
                "run the pipeline again with --force to rebuild it",
            )
        if self.local:
            return Path(self._dest(artifact_id))
        target = self.cache_dir / artifact_id
        if not target.is_dir():
            tmp = self.cache_dir / f".{artifact_id}.{uuid.uuid4().hex}"
            try:
                self.fs.get(self._dest(artifact_id), str(tmp), recursive=True)
            except Exception as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise storage_error(self.url, exc, "read an artifact from", self.fs) from None
            (tmp / _MARKER).unlink(missing_ok=True)
            try:
                os.replace(tmp, target)
            except OSError:
                # Another process downloaded it first: theirs is the same content.
                if not target.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        return target


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
