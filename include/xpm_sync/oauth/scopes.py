"""Which XPM scopes the connection asks for, and what a token's scopes leave out.

Xero's description of XPM 3.1 lists, for each endpoint, the scopes that may call it: the broad
`practicemanager` always, `practicemanager.read` for reads, and for clients, jobs, staff and time
their own granular scope (or its `.read` variant for reads). Job categories
(`category.api/list`), custom field definitions (`customfield.api/definition`), invoices and quotes
take only the broad scopes. So the connection asks, by its `scope_style`:

- `least` (the default): `practicemanager.read` (which covers every read, those two included), and
  the granular write scope of each area the practice's settings push: `practicemanager.job` while
  jobs are maintained here, `practicemanager.client` and `practicemanager.job` while custom fields
  are. Nothing is pushed: read access only.
- `granular`: only granular scopes (`.read` for an area nothing is pushed to). Job categories,
  custom fields, invoices and quotes are then out of reach and are not synced.
- `broad`: `practicemanager`, for apps registered before granular scopes.

A `scopes` option on the connection overrides all of this with the exact list.
"""

from __future__ import annotations

from dataclasses import dataclass

from xpm_sync import catalog
from xpm_sync.settings import PracticeSettings

IDENTITY = ("offline_access", "openid", "profile", "email")
BROAD, BROAD_READ = "practicemanager", "practicemanager.read"
STYLES = ("least", "granular", "broad")
# The XPM area each entity reads (None: only the broad scopes reach it).
READS: dict[str, str | None] = {
    "staff": "staff",
    "categories": None,
    "job_states": "job",
    "client_groups": "client",
    "custom_field_definitions": None,
    "clients": "client",
    "jobs": "job",
    "client_custom_fields": "client",
    "job_custom_fields": "job",
    "time_entries": "time",
    "costs": "job",
    "invoices": None,
    "quotes": None,
}
# The area each kind of local change writes to.
WRITES = {"job": "job", "client_custom_field": "client", "job_custom_field": "job"}
# What a setting pushes when it is on (or off, for the custom fields' one), in the page's words.
PUSHED_BY = {
    "maintain_jobs_locally": (True, ("job",), "Maintain jobs locally"),
    "sync_custom_fields_from_xpm": (False, ("client", "job"), "Sync custom fields from XPM"),
}


def area_scope(area: str, *, write: bool) -> str:
    return f"practicemanager.{area}" if write else f"practicemanager.{area}.read"


def pushed_areas(practice: PracticeSettings) -> set[str]:
    """The XPM areas the practice's settings push local changes to."""
    found: set[str] = set()
    for name, (when, areas, _label) in PUSHED_BY.items():
        if getattr(practice, name) is when:
            found.update(areas)
    return found


def needed(practice: PracticeSettings, style: str = "least") -> list[str]:
    """The XPM scopes the settings need, in the given style."""
    if style == "broad":
        return [BROAD]
    writes = pushed_areas(practice)
    if style == "granular":
        areas = sorted({a for a in READS.values() if a})
        return [area_scope(a, write=a in writes) for a in areas]
    return [BROAD_READ, *(area_scope(a, write=True) for a in sorted(writes))]


def requested(explicit: str | None, practice: PracticeSettings, style: str = "least") -> str:
    """The `scope` parameter of the sign-in: the connection's own list if it has one."""
    if explicit:
        return explicit
    return " ".join((*IDENTITY, *needed(practice, style)))


def covers(granted: str | None, scope: str) -> bool:
    """Whether the granted scopes include `scope` or a wider one."""
    held = set((granted or "").split())
    if scope in held or BROAD in held:
        return True
    if scope == BROAD_READ:
        return False
    area, _, kind = scope.removeprefix("practicemanager.").partition(".")
    if kind == "read":
        return BROAD_READ in held or area_scope(area, write=True) in held
    return False


def for_entity(entity: str) -> list[str]:
    """The scopes any one of which lets `entity` be read."""
    area = READS.get(entity)
    if entity not in READS:
        return []  # tax returns: derived here, no call
    found = [BROAD, BROAD_READ]
    if area:
        found += [area_scope(area, write=True), area_scope(area, write=False)]
    return found


def can_read(granted: str | None, entity: str) -> bool:
    options = for_entity(entity)
    return not options or any(s in set((granted or "").split()) for s in options)


def read_scope(entity: str, style: str = "least") -> str:
    """The scope to ask for to read `entity`, in the style (None-area entities need the broad read)."""
    area = READS.get(entity)
    if area is None or style != "granular":
        return BROAD if style == "broad" else BROAD_READ
    return area_scope(area, write=False)


def write_scope(change_entity: str) -> str:
    return area_scope(WRITES[change_entity], write=True)


def read_gap(granted: str | None, entity: str) -> tuple[str, str] | None:
    """Whether the granted scopes leave `entity` unread, and the scope that would read it:
    ("left out", scope) when the grant's style never reads it (granular: categories, custom
    fields), ("missing", scope) when the grant lacks what it needs; None when it can be read (or
    nothing is connected)."""
    if granted is None or can_read(granted, entity):
        return None
    style = style_of(granted)
    return ("left out" if entity in left_out_by_style(style) else "missing"), read_scope(entity, style)


def left_out_by_style(style: str) -> list[str]:
    """Entities the style cannot read at all (granular: job categories and custom fields)."""
    if style != "granular":
        return []
    no_area = [e for e, area in READS.items() if area is None]
    return [*no_area, *catalog.CUSTOM_FIELD_VALUES]


@dataclass(frozen=True)
class Missing:
    scope: str
    why: str  # what needs it, in the page's words

    def sentence(self) -> str:
        return f"{self.scope} ({self.why})"


def missing(granted: str | None, practice: PracticeSettings, style: str = "least") -> list[Missing]:
    """What the settings need that the granted scopes leave out, and why each is needed."""
    found: list[Missing] = []
    left_out = set(left_out_by_style(style))
    for entity in READS:
        if entity in left_out or can_read(granted, entity):
            continue
        scope = read_scope(entity, style)
        if not any(m.scope == scope for m in found):
            found.append(Missing(scope, f"to read {catalog.LABELS[entity].lower()}"))
    for name, (when, areas, label) in PUSHED_BY.items():
        if getattr(practice, name) is not when:
            continue
        for area in areas:
            scope = area_scope(area, write=True)
            if not covers(granted, scope) and not any(m.scope == scope for m in found):
                state = "on" if when else "off"
                found.append(Missing(scope, f"to push changes to XPM while '{label}' is {state}"))
    return found


def style_of(granted: str | None) -> str:
    """The style a granted set looks like: what the connection's own style must have asked for."""
    held = set((granted or "").split())
    if BROAD in held:
        return "broad"
    return "least" if BROAD_READ in held else "granular"


def missing_for_setting(granted: str | None, name: str, value: bool) -> list[str]:
    """The scopes turning `name` to `value` would need that the granted scopes leave out."""
    when, areas, _label = PUSHED_BY.get(name, (None, (), ""))
    if value is not when:
        return []
    return [s for s in (area_scope(a, write=True) for a in areas) if not covers(granted, s)]
