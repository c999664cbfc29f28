"""Every answer the sandbox serves has the shape XPM's documentation gives it.

XPM's OpenAPI description (tests/fixtures/xpm) names each answer's fields in JSON; XPM sends the
same names as XML elements. For each GET the sandbox serves, the XML is walked against the
documented schema:

- an element the documentation does not name fails the test;
- a documented field that appears in none of the answer's records fails the test.

Empty lists are fine (XPM sends `<Notes />`). Where XPM's real answers are known to differ from its
description, the difference is listed in `EXTRA` or `MISSING` with the reason, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from defusedxml import ElementTree

from tests.conftest import REPO
from tests.xpm_sandbox.conftest import connect
from xpm_sandbox.server import SandboxServer

SPEC = yaml.safe_load((REPO / "tests" / "fixtures" / "xpm" / "openapi-practicemanager-3.1.yaml").read_text())
SCHEMAS = SPEC["components"]["schemas"]

# The element each list's entries are named, by the list's name.
ITEMS = {
    "stafflist": "staff", "assigned": "staff", "categories": "category", "clients": "client",
    "contacts": "contact", "groups": "group", "relationships": "relationship", "notes": "note", "jobs": "job",
    "tasks": "task", "milestones": "milestone", "customfields": "customfield", "comments": "comment",
    "customfielddefinitions": "customfielddefinition", "jobstates": "jobstate", "invoices": "invoice",
    "templates": "template", "times": "time", "costs": "cost", "payments": "payment", "quotes": "quote",
    "options": "option",
}  # fmt: skip

WEB_URL_BESIDE = "XPM's get answers carry <WebUrl> beside the record, not inside it"
# (path, location) -> elements the sandbox may send that the description does not have there.
EXTRA = {
    ("/client.api/get/{identifier}", "Response"): ({"weburl"}, WEB_URL_BESIDE),
    ("/job.api/get/{jobNumber}", "Response"): ({"weburl"}, WEB_URL_BESIDE),
}
# (path, location) -> elements nested in a record that the description does not have there.
NESTED_EXTRA = {
    ("/job.api/costs", "Cost"): ({"Job"}, "the list of every job's costs names each cost's job (`UNLISTED`)"),
}
# (path or "*", location suffix) -> documented fields the sandbox leaves out there, and why.
MISSING = {
    ("/client.api/get/{identifier}", "Response/Client"): ({"weburl"}, WEB_URL_BESIDE),
    ("/job.api/get/{jobNumber}", "Response/Job"): ({"weburl"}, WEB_URL_BESIDE),
    ("*", "Job/Assigned/Staff"): (
        {"allocatedminutes"},
        "a job's own staff list names people only; minutes are allocated per task",
    ),
    ("*", "Task"): ({"taskid"}, "TaskID is version 3.0's name for TaskUUID"),
    ("/job.api/current", "Job"): ({"completeddate"}, "open jobs have no completed date"),
    ("not detailed", "Job"): ({"tasks", "milestones", "notes"}, "only detailed answers carry them"),
    ("not detailed", "Client"): ({"notes", "groups", "relationships"}, "only detailed answers carry them"),
    ("not detailed", "Invoice"): ({"jobs", "tasks", "costs"}, "only detailed answers carry them"),
    ("not detailed", "Quote"): ({"tasks", "costs", "options"}, "only detailed answers carry them"),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref`, `allOf` and single `oneOf` folded into one."""
    if "$ref" in schema:
        return _resolve(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]])
    if "oneOf" in schema and len(schema["oneOf"]) == 1:
        return _resolve(schema["oneOf"][0])
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_resolve(part).get("properties", {}))
        return merged
    return schema


def _properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name.lower(): sub for name, sub in _resolve(schema).get("properties", {}).items()}


class Walk:
    """What the sandbox sent at each place in an answer, against what is documented there."""

    def __init__(self) -> None:
        self.documented: dict[str, set[str]] = {}
        self.seen: dict[str, set[str]] = {}
        self.problems: list[str] = []

    def element(self, elem: Any, schema: dict[str, Any], where: str) -> None:
        props = _properties(schema)
        self.documented.setdefault(where, set(props))
        seen = self.seen.setdefault(where, set())
        for child in elem:
            name = child.tag.lower()
            if name == "tag" and "tags" in props:
                name = "tags"  # a client note's tag (since August 2025): `Tag` in XML, `tags` in the JSON description
            if name not in props:
                self.problems.append(f"{where}: <{child.tag}> is not in XPM's documentation")
                continue
            seen.add(name)
            sub = _resolve(props[name])
            if sub.get("type") == "array":
                for entry in child:
                    if entry.tag.lower() != ITEMS[name]:
                        self.problems.append(f"{where}/{child.tag}: <{entry.tag}> where <{ITEMS[name]}> belongs")
                        continue
                    self.element(entry, sub["items"], f"{where}/{child.tag}/{entry.tag}")
            elif _properties(sub):
                self.element(child, sub, f"{where}/{child.tag}")
            elif len(child):
                self.problems.append(f"{where}/{child.tag}: holds elements where a value belongs")

    def missing(self, path: str, detailed: bool) -> list[str]:
        found = []
        for where, documented in self.documented.items():
            excused: set[str] = set()
            for (scope, suffix), (names, _why) in MISSING.items():
                applies = scope in (path, "*") or (scope == "not detailed" and not detailed)
                if applies and where.endswith(suffix):
                    excused |= names
            absent = documented - self.seen.get(where, set()) - excused
            found += [f"{where}: documented <{name}> never sent" for name in sorted(absent)]
        return found


def _schema_of(path: str) -> dict[str, Any]:
    from xpm_sandbox.api import UNLISTED

    path = UNLISTED[path][0] if path in UNLISTED else path
    return dict(SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])


@pytest.fixture(scope="module")
def practice() -> Iterator[Any]:
    # Big enough that every optional field (a date of death, a billing client) occurs somewhere.
    with SandboxServer(clients=400, jobs=600, staff=8) as server:
        server.sandbox.gateway.limits.per_minute = 100_000  # the shape is under test here, not the pace
        yield connect(server)


def _calls(conn: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]], bool]]:
    """(documented path, the calls made for it, detailed)."""
    p = conn.srv.sandbox.main
    clients = list(p.clients)[:40]
    jobs = list(p.jobs)[:40]
    group = next(iter(p.groups))
    costed = list(p.costs_by_job)[:20]
    invoiced = [n for i in list(p.invoices.values())[:20] for n in i.job_numbers]
    return [
        ("/staff.api/list", [("staff.api/list", {})], True),
        ("/staff.api/get/{identifier}", [(f"staff.api/get/{u}", {}) for u in p.staff], True),
        ("/category.api/list", [("category.api/list", {})], True),
        ("/jobstate.api/list", [("jobstate.api/list", {})], True),
        ("/clientgroup.api/list", [("clientgroup.api/list", {})], True),
        ("/clientgroup.api/get/{identifier}", [(f"clientgroup.api/get/{group}", {})], True),
        ("/customfield.api/definition", [("customfield.api/definition", {})], True),
        ("/client.api/list", [("client.api/list", {"detailed": "true"})], True),
        ("/client.api/list", [("client.api/list", {"detailed": "false"})], False),
        (
            "/client.api/paged-list",
            [("client.api/paged-list", {"pageSize": "300", "pageToken": t}) for t in ("", "300")],
            True,
        ),
        ("/client.api/search", [("client.api/search", {"query": "a", "detailed": "true"})], True),
        ("/client.api/get/{identifier}", [(f"client.api/get/{u}", {}) for u in clients], True),
        ("/client.api/get/{identifier}/customfield", [(f"client.api/get/{u}/customfield", {}) for u in clients], True),
        ("/job.api/current", [("job.api/current", {"detailed": "true"})], True),
        ("/job.api/current", [("job.api/current", {"detailed": "false"})], False),
        ("/job.api/list", [("job.api/list", {"from": "20220101", "to": "20221231", "detailed": "true"})], True),
        ("/job.api/get/{jobNumber}", [(f"job.api/get/{n}", {}) for n in jobs], True),
        ("/job.api/get/{jobNumber}/customfield", [(f"job.api/get/{n}/customfield", {}) for n in jobs], True),
        ("/template.api/list", [("template.api/list", {})], True),
        ("/time.api/list", [("time.api/list", {"from": "20250101", "to": "20251231"})], True),
        ("/time.api/job/{jobNumber}", [(f"time.api/job/{n}", {}) for n in jobs], True),
        ("/time.api/get/{identifier}", [(f"time.api/get/{u}", {}) for u in list(p.times)[:20]], True),
        ("/job.api/costs", [("job.api/costs", {"page": "1"})], True),
        ("/job.api/costs/{jobNumber}", [(f"job.api/costs/{n}", {}) for n in costed], True),
        ("/invoice.api/current", [("invoice.api/current", {"detailed": "true"})], True),
        ("/invoice.api/current", [("invoice.api/current", {})], False),
        ("/invoice.api/draft", [("invoice.api/draft", {})], False),
        ("/invoice.api/list", [("invoice.api/list", {"from": "20250101", "to": "20251231", "detailed": "true"})], True),
        ("/invoice.api/job/{jobNumber}", [(f"invoice.api/job/{n}", {}) for n in invoiced], False),
        ("/invoice.api/get/{invoiceNumber}", [(f"invoice.api/get/{n}", {}) for n in list(p.invoices)[:20]], True),
        (
            "/invoice.api/payments/{invoiceNumber}",
            [(f"invoice.api/payments/{n}", {}) for n in list(p.invoices)[:20]],
            True,
        ),
        ("/quote.api/current", [("quote.api/current", {})], False),
        ("/quote.api/draft", [("quote.api/draft", {})], False),
        ("/quote.api/list", [("quote.api/list", {"from": "20250101", "to": "20251231"})], False),
        ("/quote.api/get/{quoteNumber}", [(f"quote.api/get/{n}", {}) for n in list(p.quotes)[:20]], True),
    ]


def _walk(conn: Any, path: str, calls: list[tuple[str, dict[str, str]]]) -> Walk:
    walk = Walk()
    allowed, _why = EXTRA.get((path, "Response"), (set(), ""))
    schema = _schema_of(path)
    for url, params in calls:
        reply = requests.get(conn.api + url, headers=conn.headers(), params=params, timeout=60)
        assert reply.status_code == 200, url
        root = ElementTree.fromstring(reply.content)
        assert root.tag == "Response"
        assert root.findtext("Status") == "OK", url
        for extra in [c for c in root if c.tag.lower() in allowed]:
            root.remove(extra)
        for (where, record), (names, _why) in NESTED_EXTRA.items():
            for parent in root.iter(record) if where == path else ():
                for extra in [c for c in parent if c.tag in names]:
                    parent.remove(extra)
        walk.element(root, schema, "Response")
    return walk


def test_every_sandbox_get_answer_has_its_documented_shape(practice: Any) -> None:
    problems: list[str] = []
    served = set()
    for path, calls, detailed in _calls(practice):
        served.add(path)
        walk = _walk(practice, path, calls)
        problems += [f"{path}: {p}" for p in walk.problems + walk.missing(path, detailed)]
    assert problems == [], "\n".join(problems)
    from xpm_sandbox.api import ROUTES

    assert {r.spec_path for r in ROUTES if r.method == "GET"} <= served, "a GET the sandbox serves is not checked"


def test_an_undocumented_element_or_a_missing_field_fails_the_check(practice: Any) -> None:
    """The check itself can fail: a made-up element, and a client list that lost a field."""
    walk = Walk()
    body = (
        '<Response api-method="List"><Status>OK</Status><StaffList>'
        "<Staff><UUID>s</UUID><Name>A</Name><Shoe>9</Shoe></Staff></StaffList></Response>"
    )
    walk.element(ElementTree.fromstring(body), _schema_of("/staff.api/list"), "Response")
    assert walk.problems == ["Response/StaffList/Staff: <Shoe> is not in XPM's documentation"]
    assert "Response/StaffList/Staff: documented <email> never sent" in walk.missing("/staff.api/list", True)
