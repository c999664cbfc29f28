"""Running docs/schema.md's example queries on a store, in a form to compare with the sandbox's own
answers (`xpm_sandbox.work.answers`): dates as ISO text, numbers rounded to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from xpm_sync.store.schema_doc import QUERIES


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return round(float(value), 2)
    if isinstance(value, str):
        try:
            return round(float(Decimal(value)), 2)
        except ArithmeticError:
            return value
    return value


def plain(answers: dict[str, list[list[Any]]]) -> dict[str, list[list[Any]]]:
    return {name: [[_plain(v) for v in row] for row in rows] for name, rows in answers.items()}


def run(engine: Engine, tenant_id: str) -> dict[str, list[list[Any]]]:
    """Every example query's rows on `engine`, for the practice `tenant_id`."""
    found = {}
    with engine.connect() as conn:
        for query in QUERIES:
            rows = conn.execute(text(query.for_dialect(engine.dialect.name)), {"tenant_id": tenant_id}).all()
            found[query.name] = [list(row) for row in rows]
    return plain(found)
