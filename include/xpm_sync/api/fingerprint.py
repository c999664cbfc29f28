"""Fingerprints of XPM's records, so that a record XPM sends unchanged costs one compare.

A fingerprint is a 128-bit BLAKE2b digest of the record's element exactly as XPM sent it (with
everything nested in it: a client's contacts, groups and relationships, a job's staff and tasks),
salted with the parser's field maps, so that a release that reads more fields rewrites every row
once. The fingerprint is stored with the row (`row_hash`); while a list is read, a record whose
fingerprint equals the stored one is not converted at all and reaches the loader as a marker that
carries only its key. Everything else is converted and loaded as before, fingerprint attached.

Rows that cannot be trusted to match their fingerprint are not offered for the compare: rows
removed upstream (a record that comes back must be restored), rows with a local change waiting to
be pushed (never overwritten anyway) and rows without a fingerprint (stored before fingerprints,
or changed here: `changes` clears it).

A whole answer has a fingerprint too. When a list answer has been loaded in full, its digest, the
keys it held and a signature of those rows as the load left them (how many, the newest write,
how many removed, waiting to be pushed or without a fingerprint) are kept in `answer_fingerprints`,
in the load's own transaction. When the same request is answered with the very same bytes and
the signature of those rows is unchanged (nothing has written them since), the answer is not
parsed at all: its records reach the loader as markers, as unchanged records do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from lxml import etree
from sqlalchemy import case, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from xpm_sync.api import records
from xpm_sync.api.xml import UNCHANGED, local

__all__ = ["UNCHANGED", "Fingerprints", "client_fingerprints", "digest", "job_fingerprints"]
# Bump when the meaning of a stored row changes without the field maps changing.
VERSION = 3  # 2: clients' notes are stored; 3: jobs' tasks and milestones (rows read before are read once more)


def field_maps_signature() -> str:
    """The parser's field maps as declared text (element, column, converter's name), in a fixed
    order: the same in every process, on every machine and Python release. Never a `repr` of the
    maps themselves, which holds functions whose repr carries a memory address that differs in
    each process, and every Airflow task is a new process."""
    parts = [f"version={VERSION}"]
    maps = (("client", records.CLIENT), ("contact", records.CONTACT), ("job", records.JOB), ("task", records.TASK))
    for name, fields in maps:
        parts += [f"{name}.{tag}={column}:{convert.__name__}" for tag, (column, convert) in sorted(fields.items())]
    return "\n".join(parts)


_SALT = hashlib.sha256(field_maps_signature().encode()).digest()[:16]
# SHA-256, which this machine's processors compute in hardware (about twice BLAKE2b's rate here),
# started from the salt once and copied for each record; 128 bits of it are kept.
_SEEDED = hashlib.sha256(b"xpm-sync fingerprint\0" + _SALT)


@dataclass
class ListAnswer:
    """A list answer's records as they are read, with what names the answer: the request and the
    digest of its bytes."""

    records: Iterator[Any]
    request: str
    digest: str

    def __iter__(self) -> ListAnswer:
        return self

    def __next__(self) -> Any:
        return next(self.records)


def digest(raw: bytes) -> bytes:
    hasher = _SEEDED.copy()
    hasher.update(raw)
    return hasher.digest()[:16]


def answer_hasher() -> Any:
    """A hasher for a whole answer's bytes, fed as they arrive."""
    return _SEEDED.copy()


def hex_of(hasher: Any) -> str:
    return str(hasher.hexdigest()[:32])


def answer_digest(body: IO[bytes]) -> str:
    """The digest of a whole answer: taken while it was staged (`api.client.stage`), else read
    from its start; the body is left rewound for the reader."""
    taken = getattr(body, "digest", None)
    if isinstance(taken, str):
        return taken
    hasher = answer_hasher()
    body.seek(0)
    while chunk := body.read(1 << 20):
        hasher.update(chunk)
    body.seek(0)
    return hex_of(hasher)


def request_key(path: str, params: dict[str, Any]) -> str:
    """A list request as `answer_fingerprints` names it: path and parameters, in a fixed order."""
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))


class Fingerprints:
    """The stored fingerprints of one table's rows, for one pass over XPM's lists.

    `key_tags` names the element(s) holding the record's key, in order of preference (a client's
    `UUID`, else the 3.0 `ID`; a job's `ID`, its number) and `key` the column it fills.
    With `skip_known` (jobs kept in the practice database), every stored row is skipped whatever
    its content: those rows are never overwritten by a pull.
    """

    def __init__(
        self,
        key: str,
        key_tags: tuple[str, ...],
        stored: dict[str, str],
        *,
        skip_known: bool,
        held: set[str] | None = None,
    ) -> None:
        self.key = key
        self.key_tags = key_tags
        self._stored = stored
        self._skip_known = skip_known
        # Every key the table holds, in any state: a record not among them is new to the store.
        self._held = set(stored) if held is None else held
        self.skipped = 0
        self.answers_skipped = 0
        self.model: Any = None
        self.tenant_id = ""
        self.engine: Any = None

    @classmethod
    def read(
        cls, session: Session, model: Any, tenant_id: str, key: str, key_tags: tuple[str, ...], *, skip_known: bool
    ) -> Fingerprints:
        table = model.__table__
        if skip_known:
            keys = session.connection().scalars(select(table.c[key]).where(table.c.tenant_id == tenant_id))
            return cls(key, key_tags, dict.fromkeys(keys, ""), skip_known=True)._for(session, model, tenant_id)
        trusted = table.c.removed_upstream_at.is_(None) & table.c.pending_push.is_(False)
        # Core, not the ORM: a plain cursor of tuples for every row of the practice's table.
        rows = session.connection().execute(
            select(table.c[key], table.c.row_hash, trusted).where(table.c.tenant_id == tenant_id)
        )
        stored: dict[str, str] = {}
        held: set[str] = set()
        for part in rows.partitions(5000):
            for k, fingerprint, live in part:
                held.add(k)
                if fingerprint is not None and live:
                    stored[k] = fingerprint
        return cls(key, key_tags, stored, skip_known=False, held=held)._for(session, model, tenant_id)

    def _for(self, session: Session, model: Any, tenant_id: str) -> Fingerprints:
        self.engine, self.model, self.tenant_id = session.get_bind(), model, tenant_id
        return self

    # --- whole answers --------------------------------------------------------------------------

    def answer(self, request: str, body: IO[bytes], parse: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        """The records of a list answer to `request`: markers alone if `body` is the very answer
        last loaded for it and nothing has written its rows since, else `parse()`'s records as a
        `ListAnswer`, which `sync.load.load` remembers once they are all written."""
        from xpm_sync.store.models import AnswerFingerprint

        fingerprint = answer_digest(body)
        with Session(self.engine) as session, session.begin():
            last = session.get(AnswerFingerprint, (self.tenant_id, request))
            keys = list(last.keys) if last is not None and last.digest == fingerprint else None
            if keys is not None and last is not None and last.signature != self._signature(session, keys):
                keys = None
        if keys is None:
            return ListAnswer(parse(), request, fingerprint)
        body.close()
        self.answers_skipped += 1
        self.skipped += len(keys)
        return iter([{self.key: k, UNCHANGED: True} for k in keys])

    def answer_loaded(self, session: Session, answer: ListAnswer, keys: list[str]) -> None:
        """In the load's transaction, once every record of `answer` is written."""
        from xpm_sync.store.models import AnswerFingerprint
        from xpm_sync.store.types import utcnow

        row = session.get(AnswerFingerprint, (self.tenant_id, answer.request)) or AnswerFingerprint(
            tenant_id=self.tenant_id, request=answer.request
        )
        row.digest, row.keys, row.loaded_at = answer.digest, keys, utcnow()
        row.signature = self._signature(session, keys)
        session.add(row)
        session.flush()

    def _signature(self, session: Session, keys: list[str]) -> str:
        """How the rows with these keys stand: their fingerprints, whether removed or waiting to be
        pushed. Every write to such a row changes one of these (a local change clears the
        fingerprint and marks the row pending; a merge gives it the answer's fingerprint).

        The database strings the rows together in key order and only that one string is hashed
        here, so no row is handed to Python one at a time. Should SQLite ever string them in
        another order, the signature differs and the answer is read: slower, never wrong."""
        from xpm_sync.store.stage import Stage

        table = self.model.__table__
        stage = Stage.of(session)
        staged = stage.keys("stage_answer_keys", list(dict.fromkeys(keys)))
        stage.analyze_stages(staged)  # the table is read by its key's index, whatever its statistics
        key = table.c[self.key]
        live = case((table.c.removed_upstream_at.is_(None), "1"), else_="0")
        pending = case((table.c.pending_push.is_(True), "1"), else_="0")
        item = key + "\x1f" + func.coalesce(table.c.row_hash, "") + "\x1f" + live + pending + "\x1e"
        rows = (
            select(key.label("key"), item.label("item"))
            .select_from(table.join(staged, key == staged.c.key))
            .where(table.c.tenant_id == self.tenant_id)
        )
        if stage.postgres:
            ordered = rows.subquery()
            joined = func.string_agg(ordered.c.item, aggregate_order_by(literal(""), ordered.c.key))
        else:
            ordered = rows.order_by(key).subquery()
            joined = func.group_concat(ordered.c.item, "")
        count, text = session.execute(select(func.count(), joined).select_from(ordered)).one()
        return f"{count}:{hashlib.blake2b((text or '').encode(), digest_size=16).hexdigest()}"

    def is_new(self, key: str) -> bool:
        """Whether the store has never held this record (so it has no stored children either)."""
        return key not in self._held

    def key_of(self, elem: Any) -> str | None:
        """The record's key, read as cheaply as possible; None when it has none (the converter says why)."""
        found: dict[str, str] = {}
        first = self.key_tags[0]
        for child in elem:
            name = local(child.tag)
            if name in self.key_tags and name not in found:
                text = (child.text or "").strip()
                if text:
                    found[name] = text
                    if name == first:
                        return text
        return next((found[t] for t in self.key_tags if t in found), None)

    def check(self, elem: Any) -> tuple[str | None, str, bool]:
        """(key, fingerprint, whether the stored row already holds exactly this record); the key is
        looked for only when there are stored fingerprints to compare with."""
        fingerprint = digest(etree.tostring(elem, with_tail=False)).hex()
        if not self._stored:
            return None, fingerprint, False  # nothing stored to compare with (a first load)
        key = self.key_of(elem)
        if key is None:
            return None, fingerprint, False
        stored = self._stored.get(key)
        same = stored is not None and (self._skip_known or stored == fingerprint)
        if same:
            self.skipped += 1
        return key, fingerprint, same

    def remember(self, written: Iterable[tuple[str, str | None]]) -> None:
        """(key, fingerprint) of rows just committed: a later list in the same pass that repeats
        them skips them."""
        for key, value in written:
            self._held.add(key)
            if value is not None:
                self._stored[key] = "" if self._skip_known else value


def client_fingerprints(session: Session, model: Any, tenant_id: str) -> Fingerprints:
    return Fingerprints.read(session, model, tenant_id, "uuid", ("uuid", "id"), skip_known=False)


def job_fingerprints(session: Session, model: Any, tenant_id: str, *, skip_known: bool) -> Fingerprints:
    return Fingerprints.read(session, model, tenant_id, "job_number", ("id",), skip_known=skip_known)
