"""Writing what nests inside a client, job or invoice: contacts, group memberships, relationships,
notes; a job's staff, tasks (with their staff) and milestones; an invoice's jobs and payments.

For every parent in a batch the children are replaced: those in XPM's answer are merged and
those no longer there are marked removed upstream (never deleted), a statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from xpm_sync.api.records import Record
from xpm_sync.store.models import (
    Base,
    ClientContact,
    ClientGroup,
    ClientGroupMember,
    ClientNote,
    ClientRelationship,
    Contact,
    InvoiceJob,
    JobAssignment,
    JobMilestone,
    JobTask,
    JobTaskStaff,
)
from xpm_sync.store.stage import Stage
from xpm_sync.store.upsert import upsert


def replace_children(
    session: Session,
    model: type[Base],
    tenant_id: str,
    parent_column: str,
    parents: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    track: bool = False,
) -> int:
    """Make `model`'s children of `parents` exactly `rows`: merge them, mark the rest removed.

    Set-based (`store.stage`): the rows and the parents' keys are staged, one statement merges the
    rows and one marks the children the answer no longer holds. With `track`, the session's stage
    then holds the keys inserted, changed and removed (`Stage.inserted`, `changed`, `removed`)."""
    stage = Stage.of(session)
    written = stage.merge(model, rows, constants={"tenant_id": tenant_id}, track=track)  # no rows: all are gone
    inserted, changed = stage.inserted, stage.changed
    written += stage.mark_gone(model, tenant_id, parent_column, parents, track=track)
    stage.inserted, stage.changed = inserted, changed
    return written


@dataclass
class ClientRows:
    """The child rows a batch of clients carries, one list per table."""

    parents: list[str] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    # Only detailed answers list groups and relationships; the rest leave them as they are.
    detailed: list[str] = field(default_factory=list)
    groups: dict[str, str | None] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)


def client_rows(batch: Sequence[Record]) -> ClientRows:
    """Contacts (one row each, however many clients share them), contact links, group memberships
    and relationships of a batch of clients. The practice is not in the rows: the stage writes it
    for every row (`Stage.merge`'s constants), and it ignores a record's `_` keys."""
    out = ClientRows(parents=[c["uuid"] for c in batch])
    contacts: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    members: dict[tuple[str, str], dict[str, Any]] = {}
    relationships: dict[str, dict[str, Any]] = {}
    for client in batch:
        uuid = client["uuid"]
        for c in client["_contacts"]:
            contacts[c["uuid"]] = c
            links[(uuid, c["uuid"])] = {
                "client_uuid": uuid,
                "contact_uuid": c["uuid"],
                "is_primary": c["_is_primary"],
                "position": c["_position"],
            }
        if client["_detailed"]:
            out.detailed.append(uuid)
            for g, name in client["_groups"]:
                out.groups[g] = name
                members[(g, uuid)] = {"group_uuid": g, "client_uuid": uuid}
            for r in client["_relationships"]:
                relationships[r["uuid"]] = {"client_uuid": uuid, **r}
            out.notes += [{"client_uuid": uuid, **n} for n in client.get("_notes", ())]
    out.contacts, out.links = list(contacts.values()), list(links.values())
    out.members, out.relationships = list(members.values()), list(relationships.values())
    return out


def client_children(session: Session, tenant_id: str, batch: Sequence[Record]) -> int:
    """Write the contacts, contact links, group memberships and relationships of a batch of clients."""
    rows = client_rows(batch)
    # Contacts are shared: a new client may well name one the store holds.
    practice = {"tenant_id": tenant_id}
    written = Stage.of(session).merge(Contact, rows.contacts, shared=True, constants=practice) if rows.contacts else 0
    written += replace_children(session, ClientContact, tenant_id, "client_uuid", rows.parents, rows.links)
    if not rows.detailed:
        return written
    if rows.groups:
        # A group may be newer than the last group list: record it so the membership has a home.
        placeholders = [{"tenant_id": tenant_id, "uuid": g, "name": n} for g, n in rows.groups.items()]
        upsert(session, ClientGroup, placeholders, insert_only=True)
    written += replace_children(session, ClientGroupMember, tenant_id, "client_uuid", rows.detailed, rows.members)
    written += replace_children(
        session, ClientRelationship, tenant_id, "client_uuid", rows.detailed, rows.relationships
    )
    written += replace_children(session, ClientNote, tenant_id, "client_uuid", rows.detailed, rows.notes)
    return written


@dataclass
class JobRows:
    """The child rows a batch of jobs carries. Every answer lists a job's own staff; only detailed
    answers list its tasks and milestones (`detailed` names those jobs)."""

    parents: list[str] = field(default_factory=list)
    assigned: list[dict[str, Any]] = field(default_factory=list)
    detailed: list[str] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    task_staff: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)


def job_rows(batch: Sequence[Record]) -> JobRows:
    """The staff, tasks, task staff and milestones of a batch of jobs, each row once."""
    out = JobRows(parents=[j["job_number"] for j in batch])
    assigned: dict[tuple[str, str], dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    task_staff: dict[tuple[str, str], dict[str, Any]] = {}
    milestones: dict[str, dict[str, Any]] = {}
    for job in batch:
        number = job["job_number"]
        for person in job["_assigned"]:
            assigned[(number, person["staff_uuid"])] = {"job_number": number, **person}
        if not job.get("_detailed"):
            continue
        out.detailed.append(number)
        for task in job["_tasks"]:
            tasks[task["uuid"]] = {"job_number": number, **task}
            for person in task["_assigned"]:
                key = (task["uuid"], person["staff_uuid"])
                task_staff[key] = {"job_number": number, "task_uuid": task["uuid"], **person}
        for milestone in job["_milestones"]:
            milestones[milestone["uuid"]] = {"job_number": number, **milestone}
    out.assigned, out.tasks = list(assigned.values()), list(tasks.values())
    out.task_staff, out.milestones = list(task_staff.values()), list(milestones.values())
    return out


def job_children(session: Session, tenant_id: str, batch: Sequence[Record]) -> int:
    """Write the staff assigned to a batch of jobs, and the tasks and milestones of detailed answers."""
    rows = job_rows(batch)
    written = replace_children(session, JobAssignment, tenant_id, "job_number", rows.parents, rows.assigned)
    if rows.detailed:
        nested = ((JobTask, rows.tasks), (JobTaskStaff, rows.task_staff), (JobMilestone, rows.milestones))
        for model, children in nested:
            written += replace_children(session, model, tenant_id, "job_number", rows.detailed, children)
    return written


def invoice_children(session: Session, tenant_id: str, batch: Sequence[Record]) -> int:
    """Write the jobs each invoice of a detailed answer bills (an answer without `<Jobs>` leaves them)."""
    detailed = [i for i in batch if i["_jobs"] is not None]
    rows = {
        (i["invoice_number"], j["job_number"]): {"invoice_number": i["invoice_number"], **j}
        for i in detailed
        for j in i["_jobs"]
    }
    parents = [i["invoice_number"] for i in detailed]
    return replace_children(session, InvoiceJob, tenant_id, "invoice_number", parents, list(rows.values()))
