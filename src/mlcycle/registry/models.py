"""Registered models, numbered versions, aliases, and the append-only alias log.

Every alias move is a compare-and-set in one transaction plus an event row:
two processes promoting at once cannot both win, and the history always
says who moved what, when and why.

Example:
    >>> reg = Registry(store)
    >>> v = reg.register("flights", bundle_id, blessed=True)
    >>> reg.set_alias("flights", "champion", v, reason="first model")
    >>> reg.resolve("models:/flights@champion").version
    1
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mlcycle.artifacts import ModelVersionInfo
from mlcycle.bundle import Bundle, check_model_name
from mlcycle.errors import BadInput, MlcycleError, NotFound
from mlcycle.local_store import MAX_VERSION, MODEL_REF_RE
from mlcycle.store import Store, now
from mlcycle.store import tables as t

ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class AliasConflict(MlcycleError):
    """Another process moved the alias between our read and our write.

    Exit code 2, not 1: nothing is broken, the user acts on it (look at the
    history, try again); 1 is reserved for internal failures.
    """

    exit_code = 2


def current_actor() -> str:
    """Who is acting: ``MLCYCLE_ACTOR`` (e.g. an API token's name) or the OS user."""
    explicit = os.environ.get("MLCYCLE_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}@{self.alias or 'champion'}"


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS`` or ``NAME/3``."""
    match = MODEL_REF_RE.match(text.strip())
    if not match:
        raise BadInput(
            f"{text!r} is not a model reference",
            "expected models:/NAME@ALIAS or models:/NAME/VERSION",
            "e.g. models:/flights@champion or models:/flights/2",
        )
    version = match.group("version")
    return ModelRef(match.group("name"), match.group("alias"), int(version) if version else None)


def check_alias(alias: str) -> None:
    if not ALIAS_RE.match(alias):
        raise BadInput(
            f"invalid alias name {alias!r}",
            "aliases are lower-case letters, digits, '-' and '_', starting with a letter",
            "e.g. champion, challenger, canary",
        )


@dataclass(frozen=True)
class ResolvedVersion:
    name: str
    version: int
    bundle_id: str
    blessed: bool


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # --- versions -------------------------------------------------------------------

    def register(self, name: str, bundle_id: str, *, blessed: bool) -> int:
        """Register a bundle as the next version of ``name``; idempotent per bundle."""
        check_model_name(name)  # it becomes a folder of the prediction log
        for _ in range(5):
            try:
                with self.engine.begin() as conn:
                    existing = conn.execute(
                        sa.select(t.model_versions.c.version).where(
                            t.model_versions.c.name == name,
                            t.model_versions.c.bundle_id == bundle_id,
                        )
                    ).scalar()
                    if existing is not None:
                        return int(existing)
                    if not conn.execute(
                        sa.select(t.registered_models.c.name).where(
                            t.registered_models.c.name == name
                        )
                    ).first():
                        conn.execute(
                            t.registered_models.insert().values(name=name, created_at=now())
                        )
                    latest = conn.execute(
                        sa.select(sa.func.max(t.model_versions.c.version)).where(
                            t.model_versions.c.name == name
                        )
                    ).scalar()
                    version = int(latest or 0) + 1
                    conn.execute(
                        t.model_versions.insert().values(
                            name=name,
                            version=version,
                            bundle_id=bundle_id,
                            blessed=blessed,
                            created_at=now(),
                            created_by=current_actor(),
                        )
                    )
                    return version
            except sa.exc.IntegrityError:
                continue  # another process took this number first: take the next one
        raise MlcycleError(
            f"could not register a version of {name}",
            "other processes kept registering at the same moment",
            "try again",
        )

    def versions(self, name: str) -> list[ModelVersionInfo]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(t.model_versions)
                    .where(t.model_versions.c.name == name)
                    .order_by(t.model_versions.c.version)
                )
                .mappings()
                .all()
            )
            alias_rows = conn.execute(
                sa.select(t.aliases.c.alias, t.aliases.c.version).where(t.aliases.c.name == name)
            ).all()
        by_version: dict[int, list[str]] = {}
        for alias, version in alias_rows:
            by_version.setdefault(int(version), []).append(str(alias))
        return [
            ModelVersionInfo(
                name=r["name"],
                version=r["version"],
                bundle_id=r["bundle_id"],
                blessed=bool(r["blessed"]),
                created_at=r["created_at"],
                aliases=sorted(by_version.get(r["version"], [])),
            )
            for r in rows
        ]

    def models(self) -> list[str]:
        with self.engine.connect() as conn:
            return [
                str(r[0])
                for r in conn.execute(
                    sa.select(t.registered_models.c.name).order_by(t.registered_models.c.name)
                )
            ]

    def alias_version(self, name: str, alias: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(t.aliases.c.version).where(
                    t.aliases.c.name == name, t.aliases.c.alias == alias
                )
            ).scalar()
        return None if value is None else int(value)

    def resolve(self, ref: str | ModelRef) -> ResolvedVersion:
        """The version a reference points to; :class:`NotFound` with what exists otherwise."""
        parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
        known = self.models()
        if parsed.name not in known:
            raise NotFound(
                f"no registered model named '{parsed.name}'",
                f"registered models: {', '.join(known) or 'none yet'}",
                "run `mlcycle run` to train and register one, or check the name",
            )
        version = parsed.version
        if version is None:
            alias = parsed.alias or "champion"
            version = self.alias_version(parsed.name, alias)
            if version is None:
                raise NotFound(
                    f"model '{parsed.name}' has no alias '{alias}'",
                    "no version was promoted to it",
                    f"see `mlcycle models show {parsed.name}`; promote one with "
                    f"`mlcycle models promote {parsed.name} VERSION`",
                )
        row = None
        if 1 <= version <= MAX_VERSION:  # beyond it the database refuses the number itself
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(t.model_versions.c.bundle_id, t.model_versions.c.blessed).where(
                        t.model_versions.c.name == parsed.name,
                        t.model_versions.c.version == version,
                    )
                ).first()
        if row is None:
            raise NotFound(
                f"model '{parsed.name}' has no version {version}",
                f"versions: {', '.join(str(v.version) for v in self.versions(parsed.name))}",
                "pick an existing version",
            )
        return ResolvedVersion(parsed.name, version, str(row[0]), bool(row[1]))

    def bundle(self, ref: str | ModelRef) -> tuple[ResolvedVersion, Bundle]:
        """The version a reference points to, and its bundle in this store, verified.

        The folder is re-hashed against the registered id before anything in it
        is read (``model.joblib`` is a pickle: unpickling runs code), so a bundle
        changed after registration is refused with :class:`BadInput`.

        Example:
            >>> resolved, bundle = reg.bundle("models:/flights@champion")
            >>> resolved.version, bundle.meta().name
            (3, 'flights')
        """
        resolved = self.resolve(ref)
        bundle = Bundle.open(self.store.path(resolved.bundle_id))
        bundle.verify(resolved.bundle_id)
        return resolved, bundle

    # --- aliases --------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str,
        forced: bool = False,
        expected: int | str | None = "any",
        action: str = "promote",
        actor: str | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``; return the version it pointed at before.

        ``actor`` names who acted in the alias history (a dashboard user, the
        loop); by default :func:`actor` (``MLCYCLE_ACTOR`` or the OS user).

        ``expected`` makes the move a compare-and-set: if the alias no longer
        points where the caller last saw it (``None``: it did not exist),
        :class:`AliasConflict` is raised and nothing changes. The move and its
        event row are one transaction, so the history never disagrees with the
        alias.
        """
        check_alias(alias)
        self.resolve(ModelRef(name, version=version))
        with self.engine.begin() as conn:
            current = _locked_alias(conn, name, alias, expected)
            if current is None:
                try:
                    conn.execute(t.aliases.insert().values(name=name, alias=alias, version=version))
                except sa.exc.IntegrityError as exc:
                    raise AliasConflict(
                        f"alias {name}@{alias} was created by another process meanwhile",
                        "two promotions happened at the same time",
                        f"look at `mlcycle models history {name}` and try again",
                    ) from exc
            else:
                moved = conn.execute(
                    t.aliases.update()
                    .where(
                        t.aliases.c.name == name,
                        t.aliases.c.alias == alias,
                        t.aliases.c.version == current,
                    )
                    .values(version=version)
                ).rowcount
                if moved != 1:
                    raise AliasConflict(
                        f"alias {name}@{alias} moved meanwhile",
                        "another promotion or rollback happened at the same time",
                        f"look at `mlcycle models history {name}` and try again",
                    )
            _record_move(conn, name, alias, current, version, reason, forced, action, actor)
        return None if current is None else int(current)

    def promote(
        self,
        name: str,
        version: int,
        *,
        alias: str = "champion",
        reason: str = "",
        force: bool = False,
        expected: int | str | None = "read",
        actor: str | None = None,
    ) -> int | None:
        """Move ``alias`` to ``version``; an unblessed version needs ``force`` and a reason.

        A compare-and-set: by default on where the alias pointed when this call
        began (``expected="read"``); pass the version the caller showed the
        user to refuse a move based on a stale view. Of two processes promoting
        at once, exactly one wins; the other gets :class:`AliasConflict`.

        Example:
            >>> reg.promote("flights", 3, reason="re-trained on July", expected=2)
            2
        """
        check_alias(alias)
        if expected == "read":
            expected = self.alias_version(name, alias)
        resolved = self.resolve(ModelRef(name, version=version))
        if not resolved.blessed and not force:
            raise BadInput(
                f"version {version} of {name} did not pass the gate",
                "promoting an unblessed model needs an explicit, recorded decision",
                f"see `mlcycle models show {name}/{version}`; or pass --force --reason '…'",
            )
        if force and not resolved.blessed and not reason.strip():
            raise BadInput(
                "--force needs --reason",
                "a forced promotion is recorded with its reason",
                "add --reason 'why this model must go out anyway'",
            )
        return self.set_alias(
            name,
            alias,
            version,
            reason=reason or "promoted",
            forced=force and not resolved.blessed,
            expected=expected,
            actor=actor,
        )

    def history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.alias_events).where(t.alias_events.c.name == name)
        if alias:
            query = query.where(t.alias_events.c.alias == alias)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.alias_events.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def moved_away_from(self, name: str, version: int, alias: str = "champion") -> str | None:
        """Why ``version`` no longer holds ``alias``, if someone moved it off (else ``None``).

        The last alias event that took ``alias`` away from ``version`` (a
        rollback or a promotion of another version) is a deliberate, audited
        act, which the pipeline reports rather than undoes.

        Example:
            >>> registry.moved_away_from("flights", 2)
            'v2 not re-promoted: rolled back to v1 at 2026-12-03 09:42:00 UTC by ana (bad slice)'
        """
        away = [e for e in self.history(name, alias) if e["from_version"] == version]
        if not away:
            return None
        last = away[-1]
        verb = "rolled back" if last.get("action") == "rollback" else "moved"
        when = str(last["at"]).replace("T", " ")[:19]
        return (
            f"v{version} not re-promoted: {verb} to v{last['to_version']} at {when} UTC "
            f"by {last['actor']}" + (f" ({last['reason']})" if last.get("reason") else "")
        )

    def rollback(
        self,
        name: str,
        *,
        alias: str = "champion",
        reason: str = "",
        actor: str | None = None,
    ) -> tuple[int, int]:
        """Point ``alias`` back at the version it held before its current one.

        The history is replayed as a stack (a promotion pushes, a rollback pops),
        so repeated rollbacks walk further back instead of toggling between two
        versions. The move is a compare-and-set on the current version.

        Example:
            >>> reg.rollback("flights", reason="latency regression")
            (3, 2)
        """
        check_alias(alias)
        if name not in self.models():
            self.resolve(ModelRef(name))  # raises NotFound listing the registered models
        current = self.alias_version(name, alias)
        if current is None:
            raise NotFound(
                f"model '{name}' has no alias '{alias}'",
                "nothing to roll back",
                "promote a version first",
            )
        stack: list[int] = []
        for event in self.history(name, alias):
            if event.get("action") == "rollback":
                if stack:
                    stack.pop()
            elif event["to_version"] is not None:
                stack.append(int(event["to_version"]))
        # Earlier versions equal to the current one (promoted twice) are no step back.
        previous = next((v for v in reversed(stack[:-1]) if v != current), None)
        if previous is None:
            raise BadInput(
                f"{name}@{alias} has no earlier version to roll back to",
                f"v{current} is the first version it ever pointed at",
                "promote another version explicitly instead",
            )
        self.set_alias(
            name,
            alias,
            previous,
            reason=reason or f"rollback from v{current}",
            expected=current,
            action="rollback",
            actor=actor,
        )
        return current, previous

    def unset_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str,
        expected: int | str | None = "any",
        actor: str | None = None,
    ) -> int | None:
        """Remove ``alias``; return the version it pointed at (``None``: it was not set).

        ``champion`` cannot be unset: serving would have nothing to serve; move
        it with :meth:`promote` or :meth:`rollback`. Like :meth:`set_alias` the
        removal and its history row (``to_version`` empty, action ``unset``)
        are one transaction, and ``expected`` makes it a compare-and-set.

        Example:
            >>> reg.unset_alias("flights", "challenger", reason="loop run 7 rejected v4")
            4
        """
        check_alias(alias)
        if alias == "champion":
            raise BadInput(
                "the champion alias cannot be unset",
                "servers resolve it; without it there would be nothing to serve",
                f"promote another version or run `mlcycle models rollback {name}`",
            )
        with self.engine.begin() as conn:
            current = _locked_alias(conn, name, alias, expected)
            if current is None:
                return None
            conn.execute(
                t.aliases.delete().where(
                    t.aliases.c.name == name,
                    t.aliases.c.alias == alias,
                    t.aliases.c.version == current,
                )
            )
            _record_move(conn, name, alias, current, None, reason, False, "unset", actor)
        return int(current)


def _locked_alias(
    conn: sa.Connection, name: str, alias: str, expected: int | str | None
) -> int | None:
    """Where ``alias`` points, read under the model's write lock; checked against ``expected``.

    The lock is taken *before* the read: a no-op update of the model's
    registry row (a row lock on PostgreSQL, the database write lock on
    SQLite). Two movers of the same model's aliases are serialized, so the
    loser reads the winner's move instead of a stale snapshot.
    """
    conn.execute(
        t.registered_models.update()
        .where(t.registered_models.c.name == name)
        .values(name=t.registered_models.c.name)
    )
    current = conn.execute(
        sa.select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
    ).scalar()
    if expected != "any" and current != expected:
        shown = "nothing" if expected is None else f"v{expected}"
        raise AliasConflict(
            f"alias {name}@{alias} moved meanwhile (now "
            f"{'unset' if current is None else f'v{current}'}, expected {shown})",
            "another promotion or rollback happened at the same time",
            f"look at `mlcycle models history {name}` and try again",
        )
    return None if current is None else int(current)


def _record_move(
    conn: sa.Connection,
    name: str,
    alias: str,
    from_version: int | None,
    to_version: int | None,
    reason: str,
    forced: bool,
    action: str,
    actor: str | None,
) -> None:
    """The alias history row of a move, in the move's own transaction."""
    conn.execute(
        t.alias_events.insert().values(
            name=name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor or current_actor(),
            reason=reason,
            forced=forced,
            at=now(),
            action=action,
        )
    )
