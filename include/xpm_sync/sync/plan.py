"""Tonight's plan: what the next overnight sync will spend, per entity, in XPM calls and bytes; the
custom field backlog and the nights it takes at the sweep's budget, and at another (a what-if).

Calls come from the same estimate the sync buttons show. Bytes are each entity's bytes per call on its
last sync here (Practice Activity keeps them), times tonight's calls: an entity not synced yet has
no figure. The XPM page and `xpm-sync plan` show the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xpm_sync import catalog, config, settings
from xpm_sync.oauth import scopes
from xpm_sync.store.locks import practice_connection
from xpm_sync.store.models import PracticeActivity
from xpm_sync.sync import custom_fields
from xpm_sync.sync.policy import Request, refusal

HISTORY = 500  # Practice Activity entries read back for each entity's last bytes per call


@dataclass
class Row:
    entity: str
    label: str
    calls: int
    bytes: int | None  # None: no sync of it yet to measure by
    note: str | None = None


@dataclass
class Plan:
    rows: list[Row] = field(default_factory=list)
    backlog: int = 0  # records whose custom fields were never read
    per_night: int = 0  # of them, read a night at the sweep's budget ([xpm_sync] custom_field_sweep_calls)
    nights: int | None = None
    budget: int = 0  # the sweep's calls a night
    what_if_budget: int | None = None
    what_if_nights: int | None = None

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def bytes(self) -> int:
        return sum(r.bytes or 0 for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entities": [vars(r) for r in self.rows],
            "calls": self.calls,
            "bytes": self.bytes,
            "custom_field_backlog": self.backlog,
            "backlog_read_a_night": self.per_night,
            "nights_to_clear_backlog": self.nights,
            "sweep_budget": self.budget,
            "what_if_budget": self.what_if_budget,
            "what_if_nights": self.what_if_nights,
        }


def _bytes_per_call(engine: Engine, tenant_id: str) -> dict[str, float]:
    """Each entity's bytes per call on its newest sync that measured them."""
    found: dict[str, float] = {}
    with Session(engine) as session:
        entries = session.scalars(
            select(PracticeActivity)
            .where(PracticeActivity.tenant_id == tenant_id, PracticeActivity.category == "Sync")
            .order_by(PracticeActivity.id.desc())
            .limit(HISTORY)
        )
        for entry in entries:
            details = entry.details or {}
            name, calls, size = details.get("entity"), details.get("calls") or 0, details.get("bytes")
            if name and name not in found and calls and size is not None:
                found[name] = size / calls
    return found


def _nights(backlog: int, per_night: int) -> int | None:
    return -(-backlog // per_night) if per_night > 0 else None


def tonight(engine: Engine, *, what_if_budget: int | None = None) -> Plan:
    """The next overnight sync's plan for the connected practice (empty when none is connected)."""
    from xpm_sync.sync.estimate import estimate

    with Session(engine) as session:
        row = session.scalars(practice_connection()).first()
        practice = settings.load(session)
    if row is None:
        return Plan()
    tenant, granted = row.tenant_id, row.scopes
    request = Request(manual=False)
    per_call = _bytes_per_call(engine, tenant)
    due = {
        "client_custom_fields": custom_fields.client_targets(engine, tenant),
        "job_custom_fields": custom_fields.job_targets(engine, tenant),
    }
    share = custom_fields.day_share()
    field_calls = min(sum(len(v) for v in due.values()), share)
    total_due = sum(len(v) for v in due.values()) or 1
    plan = Plan()
    for name in catalog.ALL:
        label = catalog.LABELS[name]
        skipped = refusal(name, request, practice)
        gap = None if skipped else scopes.read_gap(granted, name)  # as the pull decides (runner.pull)
        if gap and gap[0] == "left out":
            skipped = "not read: the connection's granular scopes do not reach it"
        elif gap:
            skipped = f"refused: the connection was not granted {gap[1]} (XPM needs more access)"
        if skipped:
            plan.rows.append(Row(name, label, 0, 0, skipped))
            continue
        if name in due:
            calls = round(field_calls * len(due[name]) / total_due)
        else:
            calls = estimate([name], request) if name in catalog.CALLS_XPM else 0
        size = per_call.get(name)
        plan.rows.append(Row(name, label, calls, None if size is None and calls else round((size or 0) * calls)))
    coverage = custom_fields.coverage(engine, tenant)
    plan.backlog = int(coverage["never_read"])
    plan.budget = max(1, config.get_int("custom_field_sweep_calls"))
    plan.per_night = min(plan.budget, plan.backlog)
    plan.nights = _nights(plan.backlog, plan.budget) if plan.backlog else 0
    if what_if_budget is not None:
        plan.what_if_budget = max(1, what_if_budget)
        plan.what_if_nights = _nights(plan.backlog, min(plan.what_if_budget, share)) if plan.backlog else 0
    return plan


def backlog_lines(plan: Plan) -> list[str]:
    """The custom field backlog and the what-if, as the page and the command line say them."""
    if not plan.backlog:
        lines = ["Custom field backlog: none (every record's custom fields have been read)."]
        if plan.what_if_budget is not None:
            lines.append(f"At {plan.what_if_budget:,} calls a night: nothing to clear.")
        return lines
    lines = [
        f"Custom field backlog: {plan.backlog:,} records never read; the sweep reads {plan.per_night:,} a night "
        f"({plan.budget:,} calls, [xpm_sync] custom_field_sweep_calls): about {plan.nights:,} nights."
    ]
    if plan.what_if_budget is not None:
        nights = "never" if plan.what_if_nights is None else f"about {plan.what_if_nights:,} nights"
        lines.append(f"At {plan.what_if_budget:,} calls a night: {nights}.")
    return lines
