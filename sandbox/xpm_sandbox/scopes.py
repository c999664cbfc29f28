"""Which OAuth scopes let a token call which XPM endpoint, as Xero's description of XPM 3.1 lists them.

Each endpoint takes one of a few scopes: the broad `practicemanager` always; `practicemanager.read`
for a read; and, for endpoints of a granular area (clients, jobs, staff, time), that area's scope, or
its `.read` variant for a read. Endpoints outside those areas (categories, custom field definitions,
invoices, quotes, costs, tasks, templates) take only the broad scopes. A token holds exactly what was
asked for at consent; a call it does not cover is answered 401 `insufficient_scope`.
"""

from __future__ import annotations

BROAD, BROAD_READ = "practicemanager", "practicemanager.read"
AREAS = ("client", "job", "staff", "time")
XPM_SCOPES = frozenset({BROAD, BROAD_READ, *(f"practicemanager.{a}" for a in AREAS),
                        *(f"practicemanager.{a}.read" for a in AREAS)})  # fmt: skip
IDENTITY_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
# The resource of a path (`client.api/get/{id}` -> `client`) and the area whose scope covers it.
AREA_OF = {"client": "client", "clientgroup": "client", "job": "job", "jobstate": "job", "staff": "staff",
           "time": "time"}  # fmt: skip
# Xero's description lists only the job scopes for this one read (not the broad ones).
JOB_SCOPES_ONLY = frozenset({"job.api/staff/{identifier}"})


def accepted(spec_path: str, *, writes: bool) -> frozenset[str]:
    """The scopes any one of which lets a token call `spec_path`."""
    path = spec_path.lstrip("/")
    area = AREA_OF.get(path.split(".api/", 1)[0])
    if path in JOB_SCOPES_ONLY:
        return frozenset({"practicemanager.job", "practicemanager.job.read"})
    found = {BROAD} if writes else {BROAD, BROAD_READ}
    if area:
        found.add(f"practicemanager.{area}")
        if not writes:
            found.add(f"practicemanager.{area}.read")
    return frozenset(found)


def covers(granted: str, spec_path: str, *, writes: bool) -> bool:
    return bool(set(granted.split()) & accepted(spec_path, writes=writes))


def wanted(spec_path: str, *, writes: bool) -> str:
    """The narrowest scope a token would need for `spec_path` (named in the 401's header)."""
    choices = accepted(spec_path, writes=writes)
    for scope in sorted(choices, key=lambda s: (s in (BROAD, BROAD_READ), not s.endswith(".read"))):
        return scope
    return BROAD  # pragma: no cover - every path takes some scope


def unknown(requested: str, allowed: frozenset[str]) -> list[str]:
    """Scopes asked for that the app may not have (Xero grants XPM scopes to an app after review)."""
    return sorted(s for s in requested.split() if s not in allowed and s not in IDENTITY_SCOPES)
