"""The practice's settings: what is mastered where.

- *Maintain jobs locally* (off by default): jobs are mastered in the practice database.
- *Sync custom fields from XPM* (on by default): off means custom fields are mastered locally.
- *Maintain invoices locally*: reserved; it cannot be turned on yet.
- *Read time entries / costs / invoices / quotes from XPM* (on by default): off, the overnight and
  manual syncs leave that list out (no calls), and what is stored stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync import activity, config
from xpm_sync.store.models import ActivityStatus, PracticeSetting

LABELS = {
    "maintain_jobs_locally": "Maintain jobs locally",
    "sync_custom_fields_from_xpm": "Sync custom fields from XPM",
    "maintain_invoices_locally": "Maintain invoices locally",
    "read_time_entries": "Read time entries from XPM",
    "read_costs": "Read costs from XPM",
    "read_invoices": "Read invoices from XPM",
    "read_quotes": "Read quotes from XPM",
}
# The setting that switches each read-only list on or off.
READS = {"time_entries": "read_time_entries", "costs": "read_costs", "invoices": "read_invoices",
         "quotes": "read_quotes"}  # fmt: skip
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


INVOICES_REFUSED = (
    "Maintain invoices locally is not supported yet: invoices stay mastered in XPM. The setting stays off."
)


class SettingRefused(ValueError):
    """A setting change that is not allowed; the message says why and what to do."""


@dataclass(frozen=True)
class PracticeSettings:
    maintain_jobs_locally: bool = False
    sync_custom_fields_from_xpm: bool = True
    maintain_invoices_locally: bool = False
    read_time_entries: bool = True
    read_costs: bool = True
    read_invoices: bool = True
    read_quotes: bool = True


def _parse_bool(name: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingRefused(f"{LABELS[name]} must be on or off, not {value!r}.")


def load(session: Session) -> PracticeSettings:
    """The settings in force for the practice the running code acts for: stored values over the defaults."""
    rows = session.scalars(select(PracticeSetting).where(PracticeSetting.conn_id == config.get("conn_id")))
    stored = {row.name: row.value for row in rows}
    values = {f.name: _parse_bool(f.name, stored[f.name]) for f in fields(PracticeSettings) if f.name in stored}
    return PracticeSettings(**values)


def change(session: Session, name: str, value: str | bool, *, actor: str | None) -> PracticeSettings:
    """Change one setting after checking it, and log the change in Practice Activity."""
    if name not in LABELS:
        raise SettingRefused(f"Unknown setting {name!r}. Settings: {', '.join(LABELS)}.")
    new = _parse_bool(name, value)
    if name == "maintain_invoices_locally" and new:
        raise SettingRefused(INVOICES_REFUSED)
    old = getattr(load(session), name)
    if old == new:
        return load(session)
    conn_id = config.get("conn_id")
    row = session.get(PracticeSetting, (conn_id, name))
    text = "true" if new else "false"
    if row is None:
        session.add(PracticeSetting(conn_id=conn_id, name=name, value=text, updated_by=actor))
    else:
        row.value = text
        row.updated_by = actor
    activity.record(
        session,
        ActivityStatus.SUCCESS,
        "Settings",
        f"{LABELS[name]} turned {'on' if new else 'off'}",
        details={"setting": name, "old": old, "new": new},
        actor=actor,
    )
    session.flush()
    return load(session)
