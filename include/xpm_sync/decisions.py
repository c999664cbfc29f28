"""What the sync will not do on its own, asked of a person in Airflow's Required Actions.

- A held-back mass removal: a complete list that would mark too many stored rows removed (or
  take too many jobs off XPM's current list) changes nothing and keeps the exact keys here. The
  run that met it then asks "XPM no longer lists 412 of 2,000 clients: mark them removed?"
  (`decision_tasks.RemovalDecision`). Approving marks exactly those keys removed (with their rows
  in the change feed); rejecting, or no answer within `decision_timeout_hours`, keeps them.
- A push conflict: a local change met a newer value in XPM while XPM masters the field. The push
  leaves it "conflict" and keeps a decision here; `xpm_push_decisions` asks "keep the local value
  or XPM's?" for each. The local value is sent by the next push, once; XPM's value discards the
  change and the next pull brings XPM's value.

Who decided (or that nobody did in time) is kept on the decision and in Practice Activity. A newer
answer for the same list supersedes a question not yet answered: approving an old one changes
nothing.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from xpm_sync import activity
from xpm_sync.store import feed
from xpm_sync.store import models as m
from xpm_sync.store.engine import writing
from xpm_sync.store.models import ActivityStatus, ChangeKind, Decision, DecisionKind, DecisionOutcome, OutboxStatus
from xpm_sync.store.types import utcnow
from xpm_sync.store.upsert import mark_removed

log = logging.getLogger(__name__)

MARK, KEEP = "Mark them removed", "Keep them"
LOCAL, XPM = "Keep the local value", "Keep XPM's value"
APPLY = "Apply these choices"
REMOVALS = (DecisionKind.REMOVAL.value, DecisionKind.OFF_CURRENT.value)


def model_of(table_name: str) -> type[m.Base]:
    for mapper in m.Base.registry.mappers:
        if getattr(mapper.local_table, "name", None) == table_name:
            found: type[m.Base] = mapper.class_
            return found
    raise KeyError(table_name)


def hold(
    session: Session,
    *,
    tenant_id: str,
    kind: DecisionKind,
    entity: str,
    model: type[m.Base],
    key_column: str,
    keys: Iterable[str],
    stored: int,
    question: str,
    run_id: str | None,
) -> Decision:
    """Keep a held-back removal's exact keys, for the person who decides; an older question about
    the same rows, not yet answered, is superseded by it."""
    table = m.table_of(model).name
    wanted = sorted(str(k) for k in keys)
    same = session.scalars(
        select(Decision).where(
            Decision.raised_by_run == run_id,
            Decision.tenant_id == tenant_id,
            Decision.kind == kind.value,
            Decision.table_name == table,
            Decision.outcome.is_(None),
        )
    ).all()
    for earlier in same:  # the run's earlier try met the same answer: one question
        if earlier.keys == wanted:
            return earlier
    supersede(session, tenant_id, kind, table, run_id)
    decision = Decision(
        tenant_id=tenant_id,
        kind=kind.value,
        entity=entity,
        table_name=table,
        key_column=key_column,
        keys=wanted,
        stored=stored,
        question=question,
        raised_by_run=run_id,
    )
    session.add(decision)
    session.flush()
    return decision


def supersede(session: Session, tenant_id: str, kind: DecisionKind, table_name: str, run_id: str | None) -> None:
    """A newer complete answer for this table: what earlier runs asked about it, not answered yet, is
    moot (a run's own questions stand: a list by date answers for its dates only)."""
    session.execute(
        update(Decision)
        .where(
            Decision.tenant_id == tenant_id,
            Decision.kind == kind.value,
            Decision.table_name == table_name,
            Decision.outcome.is_(None),
            or_(Decision.raised_by_run.is_(None), Decision.raised_by_run != (run_id or "")),
        )
        .values(outcome=DecisionOutcome.SUPERSEDED.value, decided_at=utcnow(), decided_by="xpm-sync")
        .execution_options(synchronize_session=False)
    )


def supersede_in(engine: Engine, tenant_id: str, kind: DecisionKind, model: type[m.Base], run_id: str | None) -> None:
    """`supersede`, in a transaction of its own."""
    with Session(writing(engine)) as session, session.begin():
        supersede(session, tenant_id, kind, m.table_of(model).name, run_id)


def _claim(engine: Engine, *where: Any, dag_id: str, run_id: str, task_id: str) -> list[Decision]:
    """The unanswered decisions matching `where`, marked as asked by this run's task."""
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        found = list(session.scalars(select(Decision).where(Decision.outcome.is_(None), *where).order_by(Decision.id)))
        for decision in found:
            decision.dag_id, decision.run_id, decision.task_id = dag_id, run_id, task_id
    return found


def held_in_run(engine: Engine, tenant_id: str, run_id: str, *, dag_id: str, task_id: str) -> list[Decision]:
    """The removals this run (of this practice) held back and nobody has decided yet, claimed for its question."""
    wanted = (Decision.tenant_id == tenant_id, Decision.raised_by_run == run_id, Decision.kind.in_(REMOVALS))
    return _claim(engine, *wanted, dag_id=dag_id, run_id=run_id, task_id=task_id)


def asked_by(engine: Engine, dag_id: str, run_id: str, task_id: str) -> list[Decision]:
    """The decisions this task of this run asked about."""
    asked = (Decision.dag_id == dag_id, Decision.run_id == run_id, Decision.task_id == task_id)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Decision).where(*asked).order_by(Decision.id)))


def removal_subject(decisions: Sequence[Decision]) -> str:
    if len(decisions) == 1:
        return decisions[0].question
    return f"XPM's lists would remove rows of {len(decisions)} kinds: mark them removed?"


def removal_body(decisions: Sequence[Decision], link: Callable[[int], str] | None) -> str:
    """The question's text (Markdown), each held-back list with a link to its rows as CSV."""
    lines = ["xpm-sync held this back, in case XPM's answer was incomplete; nothing has changed yet.", ""]
    for decision in decisions:
        download = f"[The {len(decision.keys):,} rows as CSV]({link(decision.id)})" if link else ""
        lines.append(f"- {decision.question} {download}" if len(decisions) > 1 else download)
    lines += [
        "",
        f"**{MARK}** marks exactly these rows removed (kept, never deleted; a row XPM lists again comes back). "
        f"**{KEEP}** changes nothing, and the next complete list asks again. No answer keeps them.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Settled:
    marked: int
    message: str


def settle_removals(
    engine: Engine, decisions: Sequence[Decision], *, approve: bool, who: str | None, timed_out: bool = False
) -> Settled:
    """Apply a person's answer to the removals they were asked about; record who decided."""
    marked_total = 0
    said = []
    for asked in decisions:
        with Session(writing(engine)) as session, session.begin():
            decision = session.get(Decision, asked.id, with_for_update=True)
            if decision is None:
                continue
            label = decision.question.split(":", 1)[0]
            if decision.outcome is not None:
                said.append(f"{label}: already {decision.outcome}, nothing changed")
                continue
            decision.decided_by, decision.decided_at = who, utcnow()
            decision.choice = MARK if approve else KEEP
            if not approve:
                decision.outcome = (DecisionOutcome.TIMED_OUT if timed_out else DecisionOutcome.REJECTED).value
                said.append(f"{label}: kept")
                continue
            decision.outcome = DecisionOutcome.APPROVED.value
            marked = _apply(session, decision)
            marked_total += marked
            what = "taken off the current list" if decision.kind == DecisionKind.OFF_CURRENT.value else "marked removed"
            said.append(f"{label}: {marked:,} {what}")
            activity.record(
                session,
                ActivityStatus.SUCCESS,
                "Sync",
                f"{label}: {marked:,} of the {len(decision.keys):,} rows held back {what}, as {who} decided",
                details={"run_id": decision.raised_by_run, "decision": decision.id, "entity": decision.entity},
                actor=who,
                tenant_id=decision.tenant_id,
            )
    if not approve and decisions:
        reason = "nobody decided in time" if timed_out else f"{who} decided"
        with Session(writing(engine)) as session, session.begin():
            first = decisions[0]
            activity.record(
                session,
                ActivityStatus.SUCCESS,
                "Sync",
                f"Held-back removals kept ({reason}): {'; '.join(said)}",
                details={"run_id": first.raised_by_run, "decisions": [d.id for d in decisions]},
                actor=who,
                tenant_id=first.tenant_id,
            )
    message = "; ".join(said) or "nothing was waiting"
    log.info("%s", message)
    return Settled(marked_total, message)


def _apply(session: Session, decision: Decision) -> int:
    model = model_of(decision.table_name)
    keys = [(k,) for k in decision.keys]
    if decision.kind == DecisionKind.OFF_CURRENT.value:
        table = m.table_of(model)
        taken: list[Any] = []
        for start in range(0, len(keys), 500):
            chunk = [k[0] for k in keys[start : start + 500]]
            taken += session.scalars(
                update(table)
                .where(
                    table.c.tenant_id == decision.tenant_id,
                    table.c[decision.key_column].in_(chunk),
                    table.c.is_current.is_(True),
                )
                .values(is_current=False)
                .returning(table.c[decision.key_column])
            ).all()
        return len(taken)
    marked = mark_removed(session, model, decision.tenant_id, [decision.key_column], keys)
    feed.record(
        session,
        tenant_id=decision.tenant_id,
        entity=decision.entity,
        table_name=decision.table_name,
        kind=ChangeKind.REMOVED,
        keys=marked,
        run_id=decision.raised_by_run,
    )
    return len(marked)


def jobs_to_refresh(engine: Engine, tenant_id: str) -> dict[int, list[str]]:
    """Jobs a person took off the current list whose final state has not been read yet."""
    with Session(engine) as session:
        rows = session.execute(
            select(Decision.id, Decision.keys).where(
                Decision.tenant_id == tenant_id,
                Decision.kind == DecisionKind.OFF_CURRENT.value,
                Decision.outcome == DecisionOutcome.APPROVED.value,
                Decision.refreshed_at.is_(None),
            )
        ).all()
    return {int(i): list(keys) for i, keys in rows}


def refreshed(engine: Engine, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if not wanted:
        return
    with Session(writing(engine)) as session, session.begin():
        session.execute(update(Decision).where(Decision.id.in_(wanted)).values(refreshed_at=utcnow()))


def as_csv(engine: Engine, decision_id: int, tenant_id: str) -> tuple[str, str] | None:
    """(file name, CSV text) of a decision's rows: key, and name where the table has one."""
    with Session(engine) as session:
        decision = session.get(Decision, decision_id)
        if decision is None or decision.tenant_id != tenant_id or decision.kind not in REMOVALS:
            return None
        table = m.table_of(model_of(decision.table_name))
        key = table.c[decision.key_column]
        names: dict[str, str] = {}
        if "name" in table.c:
            for start in range(0, len(decision.keys), 500):
                chunk = decision.keys[start : start + 500]
                names.update(
                    (str(k), str(n or ""))
                    for k, n in session.execute(
                        select(key, table.c.name).where(table.c.tenant_id == tenant_id, key.in_(chunk))
                    )
                )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([decision.key_column, "name"])
    for k in decision.keys:
        writer.writerow([k, _safe_cell(names.get(k, ""))])
    return f"xpm-{decision.entity}-held-back-{decision.id}.csv", out.getvalue()


def _safe_cell(text: str) -> str:
    """A name as a spreadsheet shows it, never as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# Push conflicts -----------------------------------------------------------------------------------


def raise_conflict(session: Session, *, tenant_id: str, entity: str, entry_ids: Sequence[int], question: str) -> None:
    """Keep a push conflict for a person to decide; an older one about the same changes, not answered
    yet (they were put back in line and met the conflict again), is superseded."""
    wanted = {str(i) for i in entry_ids}
    older = session.scalars(
        select(Decision).where(
            Decision.tenant_id == tenant_id,
            Decision.kind == DecisionKind.CONFLICT.value,
            Decision.entity == entity,
            Decision.outcome.is_(None),
        )
    )
    for decision in older:
        if wanted & set(decision.keys):
            decision.outcome, decision.decided_at, decision.decided_by = (
                DecisionOutcome.SUPERSEDED.value,
                utcnow(),
                "xpm-sync",
            )
    session.add(
        Decision(
            tenant_id=tenant_id,
            kind=DecisionKind.CONFLICT.value,
            entity=entity,
            table_name="outbox",
            key_column="id",
            keys=[str(i) for i in entry_ids],
            stored=len(entry_ids),
            question=question,
            raised_by_run=None,
        )
    )


def conflicts_unasked(engine: Engine, tenant_id: str) -> int:
    """How many of this practice's push conflicts no run has asked about yet."""
    with Session(engine) as session:
        return len(
            session.scalars(
                select(Decision.id).where(
                    Decision.tenant_id == tenant_id,
                    Decision.kind == DecisionKind.CONFLICT.value,
                    Decision.outcome.is_(None),
                    Decision.run_id.is_(None),
                )
            ).all()
        )


def ask_conflicts(engine: Engine, tenant_id: str, *, dag_id: str, run_id: str, task_id: str) -> list[Decision]:
    """Claim this practice's conflicts no run has asked about yet (or this task's failed try asked), for
    this run's question."""
    asked_here = (Decision.dag_id == dag_id) & (Decision.run_id == run_id) & (Decision.task_id == task_id)
    wanted = (
        Decision.tenant_id == tenant_id,
        Decision.kind == DecisionKind.CONFLICT.value,
        or_(Decision.run_id.is_(None), asked_here),
    )
    return _claim(engine, *wanted, dag_id=dag_id, run_id=run_id, task_id=task_id)


def conflict_param(decision: Decision) -> str:
    return f"change_{decision.id}"


def settle_conflicts(
    engine: Engine, chosen: dict[int, str], *, who: str | None, timed_out: bool = False
) -> dict[str, int]:
    """Apply each answer: the local value goes back in line (sent once, over XPM's), or XPM's value is
    kept (the change is discarded and the next pull brings XPM's). Returns how many of each."""
    counts = {"local": 0, "xpm": 0}
    for decision_id, choice in chosen.items():
        with Session(writing(engine)) as session, session.begin():
            decision = session.get(Decision, decision_id, with_for_update=True)
            if decision is None or decision.outcome is not None:
                continue
            local = choice == LOCAL
            decision.choice, decision.decided_by, decision.decided_at = choice, who, utcnow()
            unanswered = DecisionOutcome.TIMED_OUT if timed_out else DecisionOutcome.REJECTED
            decision.outcome = (DecisionOutcome.APPROVED if local else unanswered).value
            entries = list(
                session.scalars(
                    select(m.OutboxEntry).where(
                        m.OutboxEntry.id.in_([int(k) for k in decision.keys]),
                        m.OutboxEntry.status == OutboxStatus.CONFLICT.value,
                    )
                )
            )
            for entry in entries:
                if local:
                    entry.payload = {**entry.payload, "decided": "local", "decided_by": who}
                    entry.status, entry.last_error = OutboxStatus.PENDING.value, None
                else:
                    entry.status = OutboxStatus.DISCARDED.value
                    entry.last_error = f"XPM's value kept ({'nobody decided in time' if timed_out else who})"
            if local and entries and decision.entity == "job":
                session.execute(
                    update(m.Job)
                    .where(m.Job.tenant_id == decision.tenant_id, m.Job.job_number == entries[0].entity_key)
                    .values(pending_push=True)
                )
            counts["local" if local else "xpm"] += 1
            reason = "nobody decided in time" if timed_out else f"as {who} decided"
            activity.record(
                session,
                ActivityStatus.SUCCESS,
                "Push",
                f"{decision.question}: {choice} ({reason})"
                + ("; it goes to XPM with the next push" if local else "; the change was discarded"),
                details={"decision": decision.id, "run_id": decision.run_id},
                actor=who,
                tenant_id=decision.tenant_id,
            )
    return counts


# The XPM page ----------------------------------------------------------------------------------


def awaiting(engine: Engine, tenant_id: str | None) -> list[dict[str, Any]]:
    """Every question not answered yet, newest first, for the page."""
    if tenant_id is None:
        return []
    with Session(engine) as session:
        found = session.scalars(
            select(Decision)
            .where(Decision.tenant_id == tenant_id, Decision.outcome.is_(None))
            .order_by(Decision.id.desc())
        ).all()
        return [
            {
                "id": d.id,
                "kind": d.kind,
                "entity": d.entity,
                "question": d.question,
                "raised_at": d.raised_at,
                "rows": len(d.keys),
                "dag_id": d.dag_id,
                "run_id": d.run_id,
                "task_id": d.task_id,
                "download": d.kind in REMOVALS,
            }
            for d in found
        ]
