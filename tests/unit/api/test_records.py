"""The parser reads every recorded XPM body into typed records, and maps every gateway error."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
import requests

from tests.conftest import REPO
from xpm_sync.api import records
from xpm_sync.api.client import TokenExpired, Unauthorized, raise_for_status
from xpm_sync.api.xml import iter_items, read_status
from xpm_sync.errors import (
    XpmAuthError,
    XpmBusinessError,
    XpmDailyLimitReached,
    XpmRateLimitError,
    XpmScopeError,
    XpmTransientError,
)

RECORDED = REPO / "tests" / "fixtures" / "xpm" / "recorded"

# The element path and converter for each kind of recorded answer.
SHAPES = {
    "category": (("Categories", "Category"), records.named),
    "template__list": (("Templates", "Template"), records.named),
    "client__get": (("Client",), records.client),
    "client__add": (("Client",), records.client),
    "client__update": (("Client",), records.client),
    "client__list": (("Clients", "Client"), records.client),
    "client__search": (("Clients", "Client"), records.client),
    "staff__list": (("StaffList", "Staff"), records.staff),
    "connection__get": (("StaffList", "Staff"), records.staff),
    "staff__add": (("Staff",), records.staff),
    "staff__update": (("Staff",), records.staff),
    "job__current": (("Jobs", "Job"), records.job),
    "job__state": None,
    "job__delete": None,
    "job__": (("Job",), records.job),
    "connection__post": (("Job",), records.job),
    "connection__put": (("Job",), records.job),
}


def _shape(stem: str):
    return next((shape for prefix, shape in SHAPES.items() if stem.startswith(prefix)), None)


def _cases():
    for path in sorted(RECORDED.glob("*.json")):
        for index, item in enumerate(json.loads(path.read_text())):
            yield pytest.param(path.stem, item["response"], id=f"{path.stem}-{index}")


def _reply(response: dict) -> requests.Response:
    reply = requests.Response()
    reply.status_code = response["status"]
    reply.headers.update(response["headers"])
    reply._content = response["body"].encode()
    return reply


@pytest.mark.parametrize(("stem", "response"), list(_cases()))
def test_every_recorded_answer_is_read(stem, response):
    body = response["body"].encode()
    if response["status"] != 200:
        with pytest.raises((XpmAuthError, XpmRateLimitError, XpmTransientError, TokenExpired, Unauthorized)):
            raise_for_status(_reply(response), "GET recorded")
        return
    text = response["body"]
    if "<Status>ERROR</Status>" in text:
        with pytest.raises(XpmBusinessError) as caught:
            read_status(body)
        assert caught.value.description in text
        return
    shape = _shape(stem)
    if shape is None:  # answers that carry no record of the sync's entities (deletes, state changes)
        assert stem.startswith(("job__state", "job__delete", "staff__delete", "contact__", "connection__delete"))
        read_status(body)
        return
    path, convert = shape
    rows = list(iter_items(body, path, convert))
    assert len(rows) == text.count(f"<{path[-1]}>")
    key = "job_number" if convert is records.job else "uuid"
    assert all(row[key] for row in rows)


def test_client_fields_are_typed():
    body = json.loads((RECORDED / "client__get.json").read_text())[0]["response"]["body"].encode()
    (client,) = iter_items(body, ("Client",), records.client)
    assert client["uuid"] == "0183f65c-08c6-47b7-af05-3da072e901ae"
    assert client["legacy_id"] == "32014284"
    assert (client["name"], client["email"]) == ("Get Client Test", "NEW@EMAIL.COM")
    assert client["is_archived"] is False
    assert client["prepare_tax_return"] is False
    assert client["branch_number"] == "1"
    assert client["address"] is None  # empty elements are None, not ""
    assert client["_contacts"][0]["name"] == "contact name"
    assert client["_contacts"][0]["_is_primary"] is False
    assert client["_detailed"] is True


def test_client_notes_are_read_with_the_tag_that_replaced_folder():
    """XPM's detailed client answer since 18 August 2025: `Folder` empty, the note's tag in `Tag`."""
    body = (
        b"<Response api-method='Get'><Status>OK</Status><Client><UUID>0183f65c-08c6-47b7-af05-3da072e901ae</UUID>"
        b"<Name>Notes Test</Name><Notes>"
        b"<Note><Title>Year end</Title><Text>Asked for the bank statements</Text><Folder></Folder>"
        b"<Date>2025-09-12T10:30:00</Date><CreatedBy>Jo Bloggs</CreatedBy><Tag>Tax</Tag></Note>"
        b"<Note><Title>Old note</Title><Text>Before the change</Text><Folder>General</Folder>"
        b"<Date>2024-02-01T00:00:00</Date><CreatedBy>Jo Bloggs</CreatedBy></Note>"
        b"</Notes></Client></Response>"
    )
    (client,) = iter_items(body, ("Client",), records.client)
    assert client["_detailed"] is True
    assert client["_notes"] == [
        {"position": 0, "title": "Year end", "text": "Asked for the bank statements", "folder": None, "tag": "Tax",
         "note_date": date(2025, 9, 12), "created_by": "Jo Bloggs"},
        {"position": 1, "title": "Old note", "text": "Before the change", "folder": "General", "tag": None,
         "note_date": date(2024, 2, 1), "created_by": "Jo Bloggs"},
    ]  # fmt: skip


def test_job_fields_are_typed():
    body = json.loads((RECORDED / "job__get.json").read_text())[0]["response"]["body"].encode()
    (job,) = iter_items(body, ("Job",), records.job)
    assert job["job_number"] == "J000014"
    assert job["start_date"] == date(2019, 11, 1)
    assert job["due_date"] == date(2019, 11, 7)
    assert (job["state"], job["client_uuid"], job["manager_uuid"]) == ("Planned", "24097642", "859317")
    # The job's own staff list sends no minutes: unknown, not zero. A detailed answer with no tasks.
    assert job["_assigned"] == [{"staff_uuid": "859317", "allocated_minutes": None}]
    assert (job["_detailed"], job["_tasks"], job["_milestones"]) == (True, [], [])


def test_the_3_1_shape_and_value_types():
    body = (
        b'<Response api-method="Get"><Status>OK</Status><Job><ID>J000001</ID><UUID>u-1</UUID><Name>N</Name>'
        b"<Client><UUID>c-1</UUID><Name>C</Name></Client><Budget>1234.50</Budget><State>Planned</State>"
        b"<StartDate>2026-07-01T00:00:00</StartDate><DueDate>0001-01-01T00:00:00</DueDate>"
        b"<Contact><UUID>k-1</UUID><Name>K</Name></Contact>"
        b"<Assigned><Staff><UUID>s-1</UUID><Name>S</Name></Staff></Assigned>"
        b"</Job></Response>"
    )
    (job,) = iter_items(body, ("Job",), records.job)
    assert (job["uuid"], job["client_uuid"], job["budget"]) == ("u-1", "c-1", Decimal("1234.50"))
    assert job["contact_uuid"] == "k-1"
    assert job["due_date"] is None  # XPM's "no date"
    # Not a detailed answer (no <Tasks>): the allocation is unknown, and the tasks are not listed.
    assert job["_assigned"] == [{"staff_uuid": "s-1", "allocated_minutes": None}]
    assert job["_detailed"] is False


# --- XPM's documented shapes (written from its documentation, not from the sandbox) ------------


def test_web_url_beside_the_record_in_a_get_answer_is_read():
    body = (
        b'<Response api-method="Get"><Status>OK</Status>'
        b"<Client><UUID>c-1</UUID><Name>Acme</Name><IsArchived>No</IsArchived></Client>"
        b"<WebUrl>https://practicemanager.xero.com/Client/c-1</WebUrl></Response>"
    )
    (client,) = iter_items(body, ("Client",), records.client, beside={"WebUrl": "web_url"})
    assert client["web_url"] == "https://practicemanager.xero.com/Client/c-1"
    job_body = (
        b'<Response api-method="Get"><Status>OK</Status><Job><ID>J000009</ID><Name>N</Name></Job>'
        b"<WebUrl>https://practicemanager.xero.com/Job/J000009</WebUrl></Response>"
    )
    (job,) = iter_items(job_body, ("Job",), records.job, beside={"WebUrl": "web_url"})
    assert job["web_url"] == "https://practicemanager.xero.com/Job/J000009"


# XPM's documented `job.api/get` example (its Job API page): one person on the job's own list, two
# tasks that allocate minutes to two people, and a milestone.
DOCUMENTED_JOB = b"""<Response><Status>OK</Status><Job>
<ID>J000309</ID><Name>Brochure Design</Name><Description>Detailed description of the job</Description>
<State>Planned</State><ClientOrderNumber>PO1234</ClientOrderNumber><Type>Design</Type>
<StartDate>2007-09-15T00:00:00</StartDate><DueDate>2007-09-21T00:00:00</DueDate>
<Client><ID>47</ID><Name>Acme Corporation</Name></Client><Contact><ID>28</ID><Name>Jo Bloggs</Name></Contact>
<Manager><ID>1</ID><Name>Jo Manager</Name></Manager><Partner><ID>2</ID><Name>Jo Partner</Name></Partner>
<Assigned><Staff><ID>3</ID><Name>Jo Smith</Name></Staff></Assigned>
<Tasks>
 <Task><ID>257</ID><Name>Design &amp; Layout</Name><Description>Description of task</Description>
  <EstimatedMinutes>120</EstimatedMinutes><ActualMinutes>0</ActualMinutes><Completed>false</Completed>
  <Billable>true</Billable><StartDate>2007-09-15T00:00:00</StartDate><DueDate>2007-09-21T00:00:00</DueDate>
  <Assigned><Staff><ID>3</ID><Name>Jo Smith</Name><AllocatedMinutes>60</AllocatedMinutes></Staff>
  <Staff><ID>4</ID><Name>Sam Smith</Name><AllocatedMinutes>60</AllocatedMinutes></Staff></Assigned></Task>
 <Task><ID>258</ID><Name>Printing</Name><Description></Description>
  <EstimatedMinutes>30</EstimatedMinutes><ActualMinutes>15</ActualMinutes><Completed>true</Completed>
  <Billable>false</Billable>
  <Assigned><Staff><ID>4</ID><Name>Sam Smith</Name><AllocatedMinutes>30</AllocatedMinutes></Staff></Assigned></Task>
</Tasks>
<Milestones><Milestone><ID>5</ID><Date>2007-09-18T00:00:00</Date><Description>Proof to client</Description>
<Completed>false</Completed><Folder>Design</Folder></Milestone></Milestones>
<Notes /></Job></Response>"""


def test_the_documented_job_keeps_its_own_staff_and_its_tasks_with_their_staff():
    (job,) = iter_items(DOCUMENTED_JOB, ("Job",), records.job)
    # Exactly the job's own `<Assigned>`; XPM sent no minutes there.
    assert job["_assigned"] == [{"staff_uuid": "3", "allocated_minutes": None}]
    first, second = job["_tasks"]
    assert (first["uuid"], first["position"], first["name"]) == ("257", 0, "Design & Layout")
    assert (first["estimated_minutes"], first["actual_minutes"], first["completed"], first["billable"]) == (
        120, 0, False, True,
    )  # fmt: skip
    assert (first["start_date"], first["due_date"]) == (date(2007, 9, 15), date(2007, 9, 21))
    assert first["_assigned"] == [
        {"staff_uuid": "3", "allocated_minutes": 60},
        {"staff_uuid": "4", "allocated_minutes": 60},
    ]
    assert (second["uuid"], second["actual_minutes"], second["completed"], second["billable"]) == (
        "258",
        15,
        True,
        False,
    )
    assert second["_assigned"] == [{"staff_uuid": "4", "allocated_minutes": 30}]
    assert job["_milestones"] == [
        {"uuid": "5", "milestone_date": date(2007, 9, 18), "description": "Proof to client", "completed": False,
         "folder": "Design"},
    ]  # fmt: skip


def test_a_task_staff_member_without_allocated_minutes_is_unknown_not_zero():
    body = (
        b"<Response><Status>OK</Status><Job><ID>J1</ID><Assigned /><Tasks><Task><UUID>t-1</UUID>"
        b"<TaskUUID>type-1</TaskUUID><Name>N</Name><Assigned><Staff><UUID>s-1</UUID><Name>A</Name></Staff>"
        b"</Assigned></Task></Tasks></Job></Response>"
    )
    (job,) = iter_items(body, ("Job",), records.job)
    assert job["_assigned"] == []
    (task,) = job["_tasks"]
    assert task["task_type_uuid"] == "type-1"
    assert task["_assigned"] == [{"staff_uuid": "s-1", "allocated_minutes": None}]


# XPM's documented answers of its time, invoice, quote and cost lists (element names as its
# OpenAPI description gives the fields; XML as XPM sends them).
DOCUMENTED_TIME = b"""<Response api-method="List"><Status>OK</Status><Times><Time>
<UUID>tm-1</UUID><Job><ID>J000309</ID><Name>Brochure Design</Name></Job><Task><UUID>t-257</UUID><Name>Design</Name>
</Task><Staff><UUID>s-3</UUID><Name>Jo Smith</Name></Staff><Date>2008-06-04T00:00:00</Date><Minutes>120</Minutes>
<Note>Detailed note</Note><Billable>true</Billable><Start>13:00</Start><End>15:00</End>
<InvoiceTaskUUID>it-9</InvoiceTaskUUID><WebUrl>https://practicemanager.xero.com/time/tm-1</WebUrl></Time>
</Times></Response>"""
DOCUMENTED_INVOICE = b"""<Response api-method="List"><Status>OK</Status><Invoices><Invoice>
<ID>I000123</ID><UUID>inv-1</UUID><Type>Progress Invoice</Type><Status>Approved</Status>
<JobText>Brochure Design</JobText><Date>2008-06-04T00:00:00</Date><DueDate>2008-06-24T00:00:00</DueDate>
<Amount>1000.00</Amount><AmountTax>125.00</AmountTax><AmountIncludingTax>1125.00</AmountIncludingTax>
<AmountPaid>500.00</AmountPaid><AmountOutstanding>625.00</AmountOutstanding>
<Client><UUID>c-47</UUID><Name>Acme Corporation</Name></Client><Contact><UUID>k-28</UUID><Name>Jo Bloggs</Name>
</Contact><Jobs><Job><ID>J000309</ID><Name>Brochure Design</Name><Description>Job description</Description>
<ClientOrderNumber>PO1234</ClientOrderNumber><Tasks><Task><UUID>it-9</UUID><Name>Design</Name><Minutes>120</Minutes>
<BillableRate>150</BillableRate><Billable>true</Billable><Amount>300</Amount></Task></Tasks><Costs /></Job></Jobs>
</Invoice></Invoices></Response>"""
DOCUMENTED_PAYMENTS = b"""<Response api-method="Payments"><Status>OK</Status><Payments>
<Payment><Amount>500.00</Amount><Date>2008-06-10T00:00:00</Date><Reference>EFT 1234</Reference></Payment>
</Payments></Response>"""
DOCUMENTED_QUOTE = b"""<Response api-method="List"><Status>OK</Status><Quotes><Quote>
<ID>Q000123</ID><Type>Quote</Type><State>Issued</State><Name>Brochure Design</Name>
<Description>Design work</Description>
<Budget>1500</Budget><OptionExplanation></OptionExplanation><Date>2008-06-04T00:00:00</Date>
<ValidDate>2008-07-04T00:00:00</ValidDate><EstimatedCost>600.00</EstimatedCost>
<EstimatedCostTax>75.00</EstimatedCostTax>
<EstimatedCostIncludingTax>675.00</EstimatedCostIncludingTax><Amount>1000.00</Amount><AmountTax>125.00</AmountTax>
<AmountIncludingTax>1125.00</AmountIncludingTax><Client><UUID>c-47</UUID><Name>Acme Corporation</Name></Client>
</Quote></Quotes></Response>"""
DOCUMENTED_COST = b"""<Response api-method="Costs"><Status>OK</Status><Costs><Cost>
<UUID>cost-1</UUID><Job><ID>J000309</ID><Name>Brochure Design</Name></Job><Description>Courier</Description>
<Quantity>2</Quantity><UnitCost>10.50</UnitCost><UnitPrice>15.00</UnitPrice><Date>2008-06-04T00:00:00</Date>
<Code>COUR</Code><Note></Note><Billable>true</Billable><Supplier><UUID>sup-1</UUID><Name>Fast Couriers</Name></Supplier>
</Cost></Costs></Response>"""


def test_documented_time_entry_is_read():
    (entry,) = iter_items(DOCUMENTED_TIME, ("Times", "Time"), records.time_entry)
    assert entry == {
        "uuid": "tm-1", "job_number": "J000309", "task_uuid": "t-257", "staff_uuid": "s-3",
        "invoice_task_uuid": "it-9", "entry_date": date(2008, 6, 4), "minutes": 120, "note": "Detailed note",
        "billable": True, "start_time": "13:00", "end_time": "15:00",
        "web_url": "https://practicemanager.xero.com/time/tm-1",
    }  # fmt: skip


def test_documented_invoice_payments_quote_and_cost_are_read():
    (inv,) = iter_items(DOCUMENTED_INVOICE, ("Invoices", "Invoice"), records.invoice)
    assert (inv["invoice_number"], inv["uuid"], inv["status"], inv["invoice_date"]) == (
        "I000123", "inv-1", "Approved", date(2008, 6, 4),
    )  # fmt: skip
    assert (inv["amount_paid"], inv["amount_outstanding"], inv["client_uuid"], inv["contact_uuid"]) == (
        Decimal("500.00"), Decimal("625.00"), "c-47", "k-28",
    )  # fmt: skip
    assert inv["_jobs"] == [
        {"job_number": "J000309", "name": "Brochure Design", "description": "Job description",
         "client_order_number": "PO1234"},
    ]  # fmt: skip
    (pay,) = iter_items(DOCUMENTED_PAYMENTS, ("Payments", "Payment"), records.payment)
    assert pay == {"payment_date": date(2008, 6, 10), "amount": Decimal("500.00"), "reference": "EFT 1234"}
    (quote,) = iter_items(DOCUMENTED_QUOTE, ("Quotes", "Quote"), records.quote)
    assert (quote["quote_number"], quote["state"], quote["valid_date"], quote["amount_including_tax"]) == (
        "Q000123", "Issued", date(2008, 7, 4), Decimal("1125.00"),
    )  # fmt: skip
    assert (quote["client_uuid"], quote["contact_uuid"], quote["option_explanation"]) == ("c-47", None, None)
    (cost,) = iter_items(DOCUMENTED_COST, ("Costs", "Cost"), records.job_cost)
    assert cost == {
        "uuid": "cost-1", "job_number": "J000309", "cost_date": date(2008, 6, 4), "description": "Courier",
        "code": "COUR", "note": None, "quantity": Decimal("2"), "unit_cost": Decimal("10.50"),
        "unit_price": Decimal("15.00"), "billable": True, "supplier_uuid": "sup-1", "supplier_name": "Fast Couriers",
    }  # fmt: skip


def test_an_invoice_list_that_is_not_detailed_leaves_its_jobs_unknown():
    body = b"<Response><Status>OK</Status><Invoices><Invoice><ID>I1</ID></Invoice></Invoices></Response>"
    (inv,) = iter_items(body, ("Invoices", "Invoice"), records.invoice)
    assert inv["_jobs"] is None


def test_xpm_3_1_fields_of_clients_contacts_and_definitions_are_read():
    client_body = (
        b'<Response api-method="Get"><Status>OK</Status><Client><UUID>c-1</UUID><Name>Ann Lee</Name>'
        b"<Title>Dr</Title><Gender>Female</Gender><OtherName>Annie</OtherName>"
        b"<BillingClient><UUID>c-9</UUID><Name>Lee Family Trust</Name></BillingClient>"
        b"<Contacts><Contact><UUID>k-1</UUID><Name>K</Name><IsDeleted>Yes</IsDeleted></Contact></Contacts>"
        b"</Client></Response>"
    )
    (client,) = iter_items(client_body, ("Client",), records.client)
    assert (client["title"], client["gender"], client["other_name"]) == ("Dr", "Female", "Annie")
    assert client["billing_client_uuid"] == "c-9"
    assert client["_contacts"][0]["is_deleted"] is True
    definition_body = (
        b'<Response api-method="Definition"><Status>OK</Status><CustomFieldDefinitions><CustomFieldDefinition>'
        b"<UUID>d-1</UUID><Name>Portal</Name><Type>Link</Type><LinkUrl>https://portal.example/{0}</LinkUrl>"
        b"<ValueElement>Text</ValueElement></CustomFieldDefinition></CustomFieldDefinitions></Response>"
    )
    path = ("CustomFieldDefinitions", "CustomFieldDefinition")
    (definition,) = iter_items(definition_body, path, records.field_definition)
    assert definition["link_url"] == "https://portal.example/{0}"


def test_an_element_named_twice_keeps_the_first_value_that_is_not_empty():
    body = (
        b'<Response api-method="Get"><Status>OK</Status><Client><UUID>c-1</UUID><Name>Ann</Name>'
        b"<DateOfBirth>1980-02-03T00:00:00</DateOfBirth><DateOfBirth></DateOfBirth>"
        b"<Email></Email><Email>ann@example.com</Email></Client></Response>"
    )
    (client,) = iter_items(body, ("Client",), records.client)
    assert client["date_of_birth"] == date(1980, 2, 3)
    assert client["email"] == "ann@example.com"


@pytest.mark.parametrize(
    ("element", "message"),
    [
        pytest.param("<StartDate>31/02/2026</StartDate>", "not a date", id="odd-date"),
        pytest.param("<Budget>lots</Budget>", "not a number", id="not-a-number"),
        pytest.param("<Budget>NaN</Budget>", "not a finite number", id="nan"),
        pytest.param("<Budget>" + "9" * 40 + "</Budget>", "more digits than the practice database", id="40-digits"),
        pytest.param("<UUID>" + "a" * 5000 + "</UUID>", "a key of 5,000 characters", id="5000-character-uuid"),
        pytest.param("<Client><UUID>" + "c" * 37 + "</UUID></Client>", "a key of 37 characters", id="long-client-ref"),
    ],
)
def test_odd_values_are_clear_errors(element, message):
    from xpm_sync.errors import XpmPayloadError

    body = f"<Response><Status>OK</Status><Job><ID>J1</ID>{element}</Job></Response>".encode()
    with pytest.raises(XpmPayloadError, match=message):
        list(iter_items(body, ("Job",), records.job))


def test_a_staff_list_with_a_key_longer_than_xpms_is_refused_whole():
    from xpm_sync.errors import XpmPayloadError

    good = "<Staff><UUID>0b7c1a2e-0000-4000-8000-000000000001</UUID><Name>Ann</Name></Staff>"
    body = f"<Response><Status>OK</Status><StaffList>{good}<Staff><UUID>{'x' * 5000}</UUID></Staff></StaffList>"
    with pytest.raises(XpmPayloadError, match="Staff: a key of 5,000 characters"):
        list(iter_items((body + "</Response>").encode(), ("StaffList", "Staff"), records.staff))


def test_unknown_elements_are_ignored():
    staff = b"<Staff><UUID>s</UUID><Name>A</Name><Shoe>9</Shoe></Staff>"
    body = b"<Response><Status>OK</Status><StaffList>" + staff + b"</StaffList></Response>"
    assert list(iter_items(body, ("StaffList", "Staff"), records.staff))[0]["name"] == "A"


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        pytest.param(
            429, {"Retry-After": "22", "X-Rate-Limit-Problem": "minute"}, "", XpmRateLimitError, id="429-minute"
        ),
        pytest.param(
            429, {"Retry-After": "5000", "X-Rate-Limit-Problem": "day"}, "", XpmDailyLimitReached, id="429-day"
        ),
        pytest.param(503, {}, '{"Detail":"ServiceNotAvailable"}', XpmTransientError, id="503"),
        pytest.param(500, {}, '{Status":500}', XpmTransientError, id="500-odd-body"),
        pytest.param(403, {}, '{"Detail":"AuthenticationUnsuccessful"}', XpmAuthError, id="403"),
        # One refresh and one more try decide; a 401 after that is an XpmAuthError (see the client tests).
        pytest.param(401, {}, '{"Detail":"AuthenticationUnsuccessful"}', Unauthorized, id="401"),
        pytest.param(
            401, {}, '{"Detail":"TokenExpired: token expired at 04/29/2020 09:22:02"}', TokenExpired, id="401-expired"
        ),
        pytest.param(
            401,
            {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="practicemanager.staff.read"'},
            '{"Detail":"AuthorizationUnsuccessful"}',
            XpmScopeError,
            id="401-insufficient-scope",
        ),
    ],
)
def test_gateway_answers_map_to_the_error_hierarchy(status, headers, body, error):
    with pytest.raises(error):
        raise_for_status(_reply({"status": status, "headers": headers, "body": body}), "GET x")


def test_a_daily_limit_error_carries_the_wait_and_is_not_retried_by_airflow():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(XpmDailyLimitReached) as caught:
        raise_for_status(
            _reply({"status": 429, "headers": {"Retry-After": "7200", "X-Rate-Limit-Problem": "day"}, "body": ""}),
            "GET x",
        )
    assert caught.value.retry_after == 7200
    assert isinstance(caught.value, AirflowFailException)
