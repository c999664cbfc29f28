"""The practices one deployment keeps in step: each is an Airflow connection of type `xpm`.

`[xpm_sync] practices` lists their connection ids (comma separated); empty means the one practice
of `[xpm_sync] conn_id` (`xpm_default`), a single-practice install. That practice is the *primary*
one and keeps the names a single-practice install always had (`xpm_overnight_sync`, the `xpm_api`
pool, the Assets `xpm://practice/<entity>`); every other practice has its short name in them
(`xpm_north` -> `north`: `xpm_north_overnight_sync`, `xpm_api_north`, `xpm://north/<entity>`).

A practice's own options live in its connection's extra and win over `[xpm_sync]`'s: `timezone`,
`overnight_cron`, `overnight_deadline`, `push_cron`, `health_cron`, `alert_recipients`,
`daily_call_limit`, and `practice_name` (what the page shows).

Code acting for a practice runs inside `using(practice)`: the DAG files while they build its DAGs,
its tasks, the page's and the JSON API's request, the command line. `xpm_sync.config` then answers
for that practice (`conn_id`, its pool, its options), so nothing below has to carry it along.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from xpm_sync.plain_errors import XpmConfigError

# The options a practice's connection extra may set for itself.
OWN_OPTIONS = (
    "timezone",
    "overnight_cron",
    "overnight_deadline",
    "push_cron",
    "health_cron",
    "alert_recipients",
    "daily_call_limit",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")

_chosen: ContextVar[Practice | None] = ContextVar("xpm_practice", default=None)


@dataclass(frozen=True)
class Practice:
    conn_id: str
    name: str  # short, in ids: "north"
    primary: bool  # the single-practice install's practice: today's ids, pool and Assets
    title: str = ""  # what the page shows; the name when the connection gives none
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.title or self.name

    def dag_id(self, kind: str) -> str:
        """This practice's DAG of a kind: "overnight_sync" -> xpm_overnight_sync / xpm_north_overnight_sync."""
        return f"xpm_{kind}" if self.primary else f"xpm_{self.name}_{kind}"

    @property
    def pool(self) -> str:
        from xpm_sync import config

        base = config.option_default("api_pool")
        return base if self.primary else f"{base}_{self.name}"

    def asset_uri(self, entity: str) -> str:
        return f"xpm://{'practice' if self.primary else self.name}/{entity}"


def short_name(conn_id: str) -> str:
    """The name a connection id gives its practice: `xpm_north` -> `north` (other characters than letters,
    digits and underscores become underscores)."""
    name = re.sub(r"[^a-z0-9_]", "_", conn_id.lower().removeprefix("xpm_"))[:40].strip("_")
    if not _NAME.match(name):
        raise XpmConfigError(
            f"The XPM connection id {conn_id!r} does not give a practice name: use letters, digits and "
            "underscores, such as xpm_north."
        )
    return name


def conn_ids() -> list[str]:
    """The practices' connection ids, the primary one first when it is listed."""
    from xpm_sync import config

    primary = config.option_default("conn_id")
    listed = [part.strip() for part in config.option_default("practices").split(",") if part.strip()]
    if not listed:
        return [primary]
    unique = list(dict.fromkeys(listed))
    return sorted(unique, key=lambda conn_id: conn_id != primary)


def _read(conn_id: str) -> Practice:
    from xpm_sync import config

    primary = conn_id == config.option_default("conn_id")
    extra: dict[str, Any] = {}
    conn = config.connection(conn_id)
    if conn is not None:
        extra = dict(getattr(conn, "extra_dejson", None) or {})
    own = {key: str(extra[key]).strip() for key in OWN_OPTIONS if str(extra.get(key) or "").strip()}
    title = str(extra.get("practice_name") or "").strip()
    return Practice(conn_id, short_name(conn_id), primary, title, own)


def for_connection(conn_id: str) -> Practice:
    """The practice of this connection id, whether or not `[xpm_sync] practices` lists it."""
    return _read(conn_id)


def all_practices() -> list[Practice]:
    """Every practice, read from its connection now (an edited extra counts from the next read)."""
    found = [_read(conn_id) for conn_id in conn_ids()]
    names = [p.name for p in found]
    if len(set(names)) != len(names):
        raise XpmConfigError(f"Two XPM connections give the same practice name: {', '.join(names)}.")
    return found


def find(name_or_conn_id: str | None) -> Practice:
    """The practice with this short name or connection id; None or "" is the primary one."""
    everyone = all_practices()
    if not name_or_conn_id:
        return everyone[0]
    wanted = name_or_conn_id.strip().lower()
    for practice in everyone:
        if wanted in (practice.name, practice.conn_id.lower()):
            return practice
    known = ", ".join(p.name for p in everyone)
    raise XpmConfigError(f"There is no practice {name_or_conn_id!r}. Practices: {known}.")


def of_dag(dag_id: str) -> Practice | None:
    """The practice whose DAG this is, or None when it is no practice's."""
    from xpm_sync import catalog

    for practice in all_practices():
        if dag_id in {practice.dag_id(kind) for kind in catalog.DAG_KINDS}:
            return practice
    return None


def chosen() -> Practice | None:
    """The practice the running code acts for, if one was chosen."""
    return _chosen.get()


def current() -> Practice:
    """The practice the running code acts for; the primary one when none was chosen."""
    from xpm_sync import config

    return _chosen.get() or _read(config.option_default("conn_id"))


def several() -> bool:
    """True when more than one practice is configured."""
    return len(conn_ids()) > 1


@contextmanager
def using(practice: Practice | str | None) -> Iterator[Practice]:
    """Act for this practice (a Practice, a name or conn id, or None for the primary one) inside the block."""
    found = practice if isinstance(practice, Practice) else find(practice)
    token = _chosen.set(found)
    try:
        yield found
    finally:
        _chosen.reset(token)
