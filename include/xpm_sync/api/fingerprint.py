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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync.api import records
from xpm_sync.api.xml import UNCHANGED, local

__all__ = ["UNCHANGED", "Fingerprints", "client_fingerprints", "digest", "job_fingerprints"]
# Bump when the meaning of a stored row changes without the field maps changing.
VERSION = 1
_SALT = hashlib.blake2b(repr((VERSION, records.CLIENT, records.CONTACT, records.JOB)).encode(), digest_size=16).digest()


def digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16, salt=_SALT).digest()


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
        stored: dict[str, bytes],
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

    @classmethod
    def read(
        cls, session: Session, model: Any, tenant_id: str, key: str, key_tags: tuple[str, ...], *, skip_known: bool
    ) -> Fingerprints:
        column = getattr(model, key)
        if skip_known:
            keys = session.scalars(select(column).where(model.tenant_id == tenant_id))
            return cls(key, key_tags, dict.fromkeys(keys, b""), skip_known=True)
        rows = session.execute(
            select(column, model.row_hash, model.removed_upstream_at.is_(None) & model.pending_push.is_(False)).where(
                model.tenant_id == tenant_id
            )
        )
        stored: dict[str, bytes] = {}
        held: set[str] = set()
        for k, fingerprint, trusted in rows:
            held.add(k)
            if fingerprint is not None and trusted:
                stored[k] = bytes.fromhex(fingerprint)
        return cls(key, key_tags, stored, skip_known=False, held=held)

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

    def check(self, elem: Any) -> tuple[str | None, bytes, bool]:
        """(key, fingerprint, whether the stored row already holds exactly this record)."""
        fingerprint = digest(etree.tostring(elem, with_tail=False))
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
                self._stored[key] = b"" if self._skip_known else bytes.fromhex(value)


def client_fingerprints(session: Session, model: Any, tenant_id: str) -> Fingerprints:
    return Fingerprints.read(session, model, tenant_id, "uuid", ("uuid", "id"), skip_known=False)


def job_fingerprints(session: Session, model: Any, tenant_id: str, *, skip_known: bool) -> Fingerprints:
    return Fingerprints.read(session, model, tenant_id, "job_number", ("id",), skip_known=skip_known)
