"""Set-based writes for the sync: rows are streamed into a staging table, then one statement per
target table merges them.

A `Stage` belongs to one transaction. Its tables are temporary (PostgreSQL drops them at commit;
SQLite's are dropped and made anew at their first use in a transaction), shaped like the columns
given, and filled with the database's bulk path: `COPY` on PostgreSQL, `executemany` on SQLite.
Then:

- `merge` is one `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE` per table: a row is
  written only when it is new, when its fingerprint (`row_hash`) differs from the stored one (or,
  for a record read without one, when a column differs), or when it had been marked removed
  upstream and is back; a row with a local change waiting to be pushed is never overwritten;
- `mark_gone` marks the children of the staged parents that the answer no longer holds as removed
  upstream (one `UPDATE ... WHERE NOT EXISTS`); nothing is ever deleted.

Every statement returns what it changed, so the counts reported are rows actually written.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import Any

from psycopg import errors as psycopg_errors
from sqlalchemy import Column, MetaData, String, Table, and_, exists, literal, null, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from xpm_sync.store.engine import analyze_statement
from xpm_sync.store.models import Base, table_of
from xpm_sync.store.types import UtcDateTime, utcnow
from xpm_sync.store.upsert import content_columns

_INFO_KEY = "xpm_sync.stage"
# How long a load waits for a table's analyse lock before leaving the table to whoever holds it.
ANALYZE_WAIT = "200ms"

log = logging.getLogger(__name__)


class Stage:
    """The staging tables of one transaction, and the set-based statements that read them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.transaction = session.get_transaction()
        self.dialect = session.get_bind().dialect
        self.postgres = self.dialect.name == "postgresql"
        self.now = utcnow()
        self._made: dict[tuple[str, tuple[str, ...]], Table] = {}
        self._latest: dict[str, Table] = {}
        # PostgreSQL: rows each target table had at its last statistics, and rows written since.
        self._known: dict[str, float] = {}
        self._grown: dict[str, int] = {}
        self._fresh = False
        # Tables whose last write in this transaction went straight in (`new_parents`).
        self._direct: set[str] = set()
        # With `merge(track=True)`: the keys (less the practice) its last call inserted and changed.
        self.inserted: list[tuple[Any, ...]] = []
        self.changed: list[tuple[Any, ...]] = []
        # With `mark_gone(track=True)`: the keys (less the practice) its last call marked removed.
        self.removed: list[tuple[Any, ...]] = []

    @classmethod
    def of(cls, session: Session) -> Stage:
        """The stage of the session's current transaction (made on first use)."""
        stage = session.info.get(_INFO_KEY)
        if not isinstance(stage, Stage) or stage.transaction is not session.get_transaction():
            stage = session.info[_INFO_KEY] = cls(session)
        return stage

    # --- filling --------------------------------------------------------------------------------

    def _create(self, name: str, source: Table | None, columns: Sequence[str]) -> Table:
        # Every identifier here is a model's table or column name (never input), quoted.
        quote = self.dialect.identifier_preparer.quote
        if source is not None:
            typed = [Column(c, source.c[c].type) for c in columns]
            listed = ", ".join(quote(c) for c in columns)
            body = f"SELECT {listed} FROM {quote(source.name)}"  # noqa: S608 - model names, quoted
        else:
            typed = [Column(c, String(64)) for c in columns]
            body = "SELECT " + ", ".join(f"CAST(NULL AS VARCHAR(64)) AS {quote(c)}" for c in columns)
        if self.postgres:
            self.session.execute(text(f"CREATE TEMPORARY TABLE {quote(name)} ON COMMIT DROP AS {body} WITH NO DATA"))
        else:
            self.session.execute(text(f"DROP TABLE IF EXISTS temp.{quote(name)}"))
            self.session.execute(text(f"CREATE TEMPORARY TABLE {quote(name)} AS {body} LIMIT 0"))
            # SQLite answers `NOT EXISTS (... stage ...)`, or a join with a stage of keys, by scanning
            # the stage once per stored row unless the stage is indexed on what is looked up: its key.
            keys = (
                [c.name for c in source.primary_key.columns if c.name in columns and c.name != "tenant_id"]
                if source is not None
                else list(columns)
            )
            if keys:
                listed = ", ".join(quote(c) for c in keys)
                self.session.execute(text(f"CREATE INDEX temp.{quote('ix_' + name)} ON {quote(name)} ({listed})"))
        return Table(name, MetaData(), *typed)

    def fill(
        self,
        name: str,
        source: Table | None,
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        constants: Mapping[str, Any] | None = None,
    ) -> Table:
        """Stage `rows` (their `columns`; those in `constants` are the same for every row) in a
        temporary table named after `name`, replacing what it held."""
        columns = tuple(columns)
        table = self._made.get((name, columns))
        if table is None:
            taken = any(made == name for made, _ in self._made)
            table = self._create(f"{name}_{len(self._made)}" if taken else name, source, columns)
            self._made[(name, columns)] = table
        else:
            self.session.execute(table.delete())
        self._latest[name] = table
        if rows:
            fixed = constants or {}
            self.write_rows(table, [c for c in columns if c not in fixed], rows, fixed)
        return table

    def write_rows(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        """Write `rows` (their `columns`, plus `constants` the same for every row) into `table` by
        the database's bulk path: `COPY` on PostgreSQL, the driver's own `executemany` on SQLite.
        Values go through each column type's bind processor, as SQLAlchemy would send them; the
        constants are processed once."""
        fixed = dict(constants or {})
        names = [*columns, *fixed]
        tail = tuple(
            self._adapted(v if p is None else p(v))
            for v, p in ((fixed[c], table.c[c].type.bind_processor(self.dialect)) for c in fixed)
        )
        # Only the columns whose type changes the value on its way to the driver are processed.
        processed = [
            (i, p) for i, c in enumerate(columns) if (p := table.c[c].type.bind_processor(self.dialect)) is not None
        ]
        single = len(columns) == 1
        get = itemgetter(*columns) if columns else (lambda _row: ())

        def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
            try:
                got = (get(row),) if single else get(row)
            except KeyError:  # a column some rows leave out (a record read without a fingerprint)
                got = tuple(row.get(c) for c in columns)
            if processed:
                got = list(got)
                for i, process in processed:
                    got[i] = process(got[i])
                got = tuple(got)
            return got + tail

        self._bulk(table, names, (values(row) for row in rows))

    def _adapted(self, value: Any) -> Any:
        """A constant as SQLite's driver would adapt it (a moment as ISO text), done once for all
        rows rather than by the driver for each."""
        if not self.postgres and isinstance(value, datetime):
            return value.isoformat(" ")
        return value

    def _bulk(self, table: Table, names: Sequence[str], tuples: Iterable[tuple[Any, ...]]) -> None:
        """Values ready for the driver, in the order of `names`, into `table` by the bulk path."""
        quote = self.dialect.identifier_preparer.quote
        listed = ", ".join(quote(c) for c in names)
        connection = self.session.connection().connection.driver_connection
        if self.postgres:
            statement = f"COPY {quote(table.name)} ({listed}) FROM STDIN"
            with connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                for row in tuples:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(names))
            statement = f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks})"  # noqa: S608 - model names
            connection.executemany(statement, tuples)  # type: ignore[union-attr]

    def keys(self, name: str, values: Sequence[str]) -> Table:
        """A one-column stage of keys (the parents whose children are being replaced)."""
        table = self.fill(name, None, ("key",), [])
        if values:
            self._bulk(table, ["key"], ((v,) for v in values))
        return table

    # --- new records --------------------------------------------------------------------------

    @contextmanager
    def new_parents(self) -> Iterator[None]:
        """Within this block the rows merged are records the store has never held, and their
        children: they are written straight into their tables by the bulk path, and no stored
        children need marking gone. Should a row exist after all (another run wrote it meanwhile),
        the database refuses it, that table's write is rolled back to a savepoint and merged as
        usual, and the rest of the block is treated as not new."""
        self._fresh = True
        try:
            yield
        finally:
            self._fresh = False
            self._direct.clear()

    def _insert_new(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], constants: Mapping[str, Any]
    ) -> bool:
        """Write rows straight into `table`; False (nothing written) if one of them is there already."""
        try:
            with self.session.begin_nested():
                given = [c for c in columns if c not in constants]
                self.write_rows(table, given, rows, {**constants, "synced_at": self.now})
        except (IntegrityError, psycopg_errors.UniqueViolation, sqlite3.IntegrityError):
            self._fresh = False
            return False
        self._grown[table.name] = self._grown.get(table.name, 0) + len(rows)
        return True

    # --- merging --------------------------------------------------------------------------------

    def merge(
        self,
        model: type[Base],
        rows: Sequence[Mapping[str, Any]],
        *,
        insert_only: bool = False,
        shared: bool = False,
        constants: Mapping[str, Any] | None = None,
        track: bool = False,
    ) -> int:
        """Insert or update `rows` of `model` through its stage; how many rows were written.

        Every row carries the table's key, or `constants` do (columns the same for every row, such
        as the practice); the columns of the first row are the ones written, but for names that
        start with `_` (a record's nested lists), and a column the rows leave out is not touched.
        With `insert_only`, stored rows are left as they are. Rows must not repeat a key. Inside
        `new_parents`, rows are inserted straight away, unless `shared` (rows other records share,
        like contacts, may well be stored already). With `track`, `inserted` and `changed` then hold
        the keys (less the practice) of the rows written, by what the store held before.
        """
        table = table_of(model)
        fixed = dict(constants or {})
        keys = [c.name for c in table.primary_key.columns]
        given = [*[c for c in rows[0] if not c.startswith("_")], *fixed] if rows else [*keys]
        missing = [k for k in keys if k not in given]
        if missing:
            raise ValueError(f"{table.name}: rows lack key columns {missing}")
        fingerprinted = "row_hash" in table.c
        data = [c for c in content_columns(table) if c in given]
        columns = [*keys, *data] + (["row_hash"] if fingerprinted else [])
        own = [k for k in keys if k not in fixed]
        self.inserted, self.changed = [], []
        if self._fresh and not shared and rows and self._insert_new(table, columns, rows, fixed):
            self._direct.add(table.name)
            if track:
                self.inserted = [tuple(r[k] for k in own) for r in rows]
            return len(rows)
        self._direct.discard(table.name)
        staged = self.fill(f"stage_{table.name}", table, columns, rows, fixed)
        if not rows:
            return 0
        held: set[tuple[Any, ...]] = set()
        if track:  # which of the staged rows the store holds already (read from the stage, by the key)
            stored = select(*[staged.c[k] for k in own]).where(
                exists().where(
                    *[table.c[k] == v for k, v in fixed.items() if k in keys],
                    *[table.c[k] == staged.c[k] for k in own],
                )
            )
            held = {tuple(r) for r in self.session.execute(stored)}
        chosen = select(
            *[staged.c[c] for c in columns],
            literal(self.now, UtcDateTime()).label("synced_at"),
            null().label("removed_upstream_at"),
        ).where(true())  # SQLite: a WHERE keeps ON CONFLICT from reading as a join constraint
        insert = postgresql.insert if self.postgres else sqlite.insert
        statement = insert(table).from_select([*columns, "synced_at", "removed_upstream_at"], chosen)
        if insert_only:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        else:
            excluded = statement.excluded
            differs = or_(*[table.c[c].is_distinct_from(excluded[c]) for c in data]) if data else true()
            if fingerprinted:
                changed = or_(
                    and_(excluded.row_hash.is_not(None), table.c.row_hash.is_distinct_from(excluded.row_hash)),
                    and_(excluded.row_hash.is_(None), differs),
                )
            else:
                changed = differs
            updated = [*data, "row_hash"] if fingerprinted else data
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={c: excluded[c] for c in [*updated, "synced_at", "removed_upstream_at"]},
                where=and_(table.c.pending_push.is_(False), or_(changed, table.c.removed_upstream_at.is_not(None))),
            )
        done = self.session.execute(statement.returning(*[table.c[k] for k in (own or keys)])).all()
        if track:
            for row in done:
                (self.changed if tuple(row) in held else self.inserted).append(tuple(row))
        self._grown[table.name] = self._grown.get(table.name, 0) + len(done)
        return len(done)

    def refresh_statistics(self, table: Table) -> None:
        """PostgreSQL plans a statement from the table's statistics, and a table whose statistics
        are missing or stale plans the anti-join as nested scans (minutes a batch at 100,000 jobs,
        measured). So a table is analysed again, here, where this transaction's rows are visible,
        when it was never analysed, when more of it changed since its statistics than they
        counted (rows another process wrote: autovacuum gets to them only later), or when it more
        than doubled in this transaction: a few times a load."""
        if not self.postgres:
            return
        known = self._known.get(table.name)
        if known is None:
            reltuples, changed = self.session.execute(
                text(
                    "SELECT c.reltuples, COALESCE(s.n_mod_since_analyze, 0) FROM pg_class c "
                    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = CAST(:name AS regclass)"
                ),
                {"name": table.name},
            ).one()
            known = max(float(reltuples), 0.0)
            self._known[table.name] = known
            if reltuples < 0 or changed > max(1000.0, known):
                self._analyze(table.name)
                return
        grown = self._grown.get(table.name, 0)
        if grown > max(1000.0, known):
            self._analyze(table.name)

    def _analyze(self, name: str) -> None:
        """Analyse the table inside this transaction, unless another transaction holds its analyse
        lock: then it is tried again at the next batch. ANALYZE in a transaction keeps that lock
        until it commits, so with several practices loading the same tables at once, waiting for it
        would hold each load until another's whole load had committed (seen in
        bench/several_practices.py)."""
        previous = self.session.scalar(text("SELECT current_setting('lock_timeout')"))
        try:
            with self.session.begin_nested():
                self.session.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": ANALYZE_WAIT})
                self.session.execute(text(analyze_statement(name)))
                self.session.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": previous})
        except OperationalError as exc:
            if not isinstance(exc.orig, psycopg_errors.LockNotAvailable):
                raise
            log.info("%s is being analysed by another transaction; this load tries again at its next batch", name)
            return
        self._known[name] = float(
            self.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:n AS regclass)"), {"n": name})
            or 0
        )
        self._grown[name] = 0

    def analyze_stages(self, *stages: Table) -> None:
        """A temporary table is never analysed by autovacuum: without statistics the planner
        guesses its size and may nest scans over it. Cheap for a stage of one batch."""
        if self.postgres:
            for stage in stages:
                self.session.execute(text(f"ANALYZE {self.dialect.identifier_preparer.quote(stage.name)}"))

    def mark_gone(
        self, model: type[Base], tenant_id: str, parent_column: str, parent_keys: Sequence[str], *, track: bool = False
    ) -> int:
        """Mark children of these parents that `model`'s stage does not hold as removed upstream.

        A child with a local change waiting to be pushed is left alone: XPM does not have it yet.
        With `track`, `removed` then holds the keys (less the practice) of the rows marked.
        """
        table = table_of(model)
        self.removed = []
        if table.name in self._direct or not parent_keys:
            return 0  # the children of records the store never held: none were stored before
        parents = self.keys("stage_parents", list(dict.fromkeys(parent_keys)))
        self.refresh_statistics(table)
        staged = self._latest[f"stage_{table.name}"]
        self.analyze_stages(parents, staged)
        keys = [c.name for c in table.primary_key.columns if c.name != "tenant_id"]
        still_there = exists().where(*[staged.c[k] == table.c[k] for k in keys])
        statement = (
            update(table)
            .where(
                table.c.tenant_id == tenant_id,
                table.c.removed_upstream_at.is_(None),
                table.c.pending_push.is_(False),
                table.c[parent_column].in_(select(parents.c.key)),
                ~still_there,
            )
            .values(removed_upstream_at=self.now)
        )
        if track:
            marked = self.session.execute(statement.returning(*[table.c[k] for k in keys]))
            self.removed = [tuple(row) for row in marked]
            return len(self.removed)
        return int(self.session.execute(statement).rowcount)  # type: ignore[attr-defined]
