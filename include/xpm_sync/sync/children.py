"""Writing what nests inside a client or job: contacts, group memberships, relationships, staff.

For every parent in a batch the children are replaced: those in XPM's answer are merged and
those no longer there are marked removed upstream (never deleted), a statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from xpm_sync.api.records import Record
from xpm_sync.store.models import (
    Base,
    ClientContact,
    ClientGroup,
    ClientGroupMember,
    ClientRelationship,
    Contact,
    JobAssignment,
)
from xpm_sync.store.stage import Stage
from xpm_sync.store.upsert import upsert


def _table(model: type[Base]) -> Table:
    table: Table = model.__table__  # type: ignore[assignment]
    return table


def replace_children(
    session: Session,
    model: type[Base],
    tenant_id: str,
    parent_column: str,
    parents: Sequence[str],
    rows: list[dict[str, Any]],
) -> int:
    """Make `model`'s children of `parents` exactly `rows`: merge them, mark the rest removed.

    Set-based (`store.stage`): the rows and the parents' keys are staged, one statement merges the
    rows and one marks the children the answer no longer holds."""
    stage = Stage.of(session)
    written = stage.merge(model, rows)  # with no rows, an empty stage: every child is gone
    if not parents:
        return written
    staged_parents = stage.keys("stage_parents", list(dict.fromkeys(parents)))
    return written + stage.mark_gone(model, tenant_id, parent_column, staged_parents)


def client_children(session: Session, tenant_id: str, batch: Sequence[Record]) -> int:
    """Contacts, contact links, group memberships and relationships of a batch of clients."""
    written = 0
    contacts, links = [], []
    for client in batch:
        for c in client["_contacts"]:
            contacts.append({"tenant_id": tenant_id, **{k: v for k, v in c.items() if not k.startswith("_")}})
            links.append(
                {
                    "tenant_id": tenant_id,
                    "client_uuid": client["uuid"],
                    "contact_uuid": c["uuid"],
                    "is_primary": c["_is_primary"],
                    "position": c["_position"],
                }
            )
    if contacts:
        written += Stage.of(session).merge(Contact, _dedupe(contacts, "uuid"))
    written += replace_children(session, ClientContact, tenant_id, "client_uuid", [c["uuid"] for c in batch], links)

    detailed = [c for c in batch if c["_detailed"]]
    if not detailed:
        return written
    groups = {g: name for c in detailed for g, name in c["_groups"]}
    if groups:
        # A group may be newer than the last group list: record it so the membership has a home.
        placeholders = [{"tenant_id": tenant_id, "uuid": g, "name": n} for g, n in groups.items()]
        upsert(session, ClientGroup, placeholders, insert_only=True)
    members = [
        {"tenant_id": tenant_id, "group_uuid": g, "client_uuid": c["uuid"]} for c in detailed for g, _ in c["_groups"]
    ]
    written += replace_children(
        session, ClientGroupMember, tenant_id, "client_uuid", [c["uuid"] for c in detailed], members
    )
    relationships = [
        {"tenant_id": tenant_id, "client_uuid": c["uuid"], **r} for c in detailed for r in c["_relationships"]
    ]
    written += replace_children(
        session, ClientRelationship, tenant_id, "client_uuid", [c["uuid"] for c in detailed], relationships
    )
    return written


def job_children(session: Session, tenant_id: str, batch: Sequence[Record]) -> int:
    """The staff assigned to a batch of jobs."""
    rows = [{"tenant_id": tenant_id, "job_number": j["job_number"], **a} for j in batch for a in j["_assigned"]]
    return replace_children(
        session, JobAssignment, tenant_id, "job_number", [j["job_number"] for j in batch], _dedupe_assign(rows)
    )


def _dedupe(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return list({r[key]: r for r in rows}.values())


def _dedupe_assign(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({(r["job_number"], r["staff_uuid"]): r for r in rows}.values())
