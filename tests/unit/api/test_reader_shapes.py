"""The reader hands only record-named elements to Python; what it does not hand over is still read
or refused: records in an unusual casing, foreign elements in a list, records beside the list."""

from __future__ import annotations

import pytest

from xpm_sync.api import records
from xpm_sync.api.fingerprint import UNCHANGED, Fingerprints, digest
from xpm_sync.api.xml import iter_items
from xpm_sync.errors import XpmPayloadError


def staff_list(*items: bytes) -> bytes:
    return b"<Response><Status>OK</Status><StaffList>" + b"".join(items) + b"</StaffList></Response>"


def staff(uuid: str, tag: str = "Staff") -> bytes:
    return f"<{tag}><UUID>{uuid}</UUID><Name>N {uuid}</Name></{tag}>".encode()


def uuids(body: bytes, **kwargs) -> list[str]:
    return [r["uuid"] for r in iter_items(body, ("StaffList", "Staff"), records.staff, **kwargs)]


def test_records_in_any_casing_are_read_in_order():
    body = staff_list(staff("a"), staff("b", "sTaff"), staff("c", "STAFF"), staff("d"), staff("e", "StAfF"))
    assert uuids(body) == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(staff_list(staff("a"), b"<Client><UUID>x</UUID></Client>", staff("b")), id="between"),
        pytest.param(staff_list(staff("a"), b"<Other/>"), id="after-the-last"),
        pytest.param(staff_list(b"<Other/>"), id="alone"),
        pytest.param(staff_list(b"<Group>" + staff("a") + b"</Group>"), id="record-nested-in-foreign"),
    ],
)
def test_anything_foreign_in_a_list_is_a_shape_error(body):
    with pytest.raises(XpmPayloadError, match="list holds"):
        uuids(body)


def test_a_record_named_like_the_list_item_elsewhere_is_not_a_record():
    # A job's <Client> is part of the job, not a client record.
    body = (
        b"<Response><Status>OK</Status><Jobs><Job><ID>J1</ID><Client><UUID>c</UUID><Name>C</Name></Client>"
        b"</Job></Jobs></Response>"
    )
    jobs = list(iter_items(body, ("Jobs", "Job"), records.job))
    assert [(j["job_number"], j["client_uuid"]) for j in jobs] == [("J1", "c")]


def test_status_after_the_records_is_refused():
    body = b"<Response><StaffList>" + staff("a") + b"</StaffList><Status>OK</Status></Response>"
    with pytest.raises(XpmPayloadError, match="before an OK status"):
        uuids(body)


def test_a_missing_list_is_not_an_empty_one():
    with pytest.raises(XpmPayloadError, match="no <StaffList> list"):
        uuids(b"<Response><Status>OK</Status></Response>")
    assert uuids(b"<Response><Status>OK</Status><StaffList/></Response>") == []


def test_a_single_record_in_another_casing_and_its_web_url_beside_it():
    body = b"<Response><Status>OK</Status><staff><UUID>a</UUID></staff><WEBURL>https://x/a</WEBURL></Response>"
    [row] = iter_items(body, ("Staff",), records.staff, beside={"WebUrl": "web_url"})
    assert (row["uuid"], row["web_url"]) == ("a", "https://x/a")


def test_a_matching_fingerprint_skips_conversion_and_others_carry_theirs():
    first = staff_list(staff("a"), staff("b"))
    loaded = list(iter_items(first, ("StaffList", "Staff"), records.staff, fingerprints=_prints({})))
    stored = {r["uuid"]: r["row_hash"] for r in loaded}
    assert stored["a"] == digest(staff("a")).hex()
    changed = staff_list(staff("a"), b"<Staff><UUID>b</UUID><Name>Renamed</Name></Staff>", staff("c"))
    prints = _prints(stored)
    again = list(iter_items(changed, ("StaffList", "Staff"), records.staff, fingerprints=prints))
    assert again[0] == {"uuid": "a", UNCHANGED: True}
    assert (again[1]["name"], again[2]["name"]) == ("Renamed", "N c")
    assert prints.skipped == 1


def test_with_skip_known_every_stored_key_is_skipped_whatever_its_content():
    prints = Fingerprints("uuid", ("uuid", "id"), {"a": ""}, skip_known=True)
    rows = list(
        iter_items(staff_list(staff("a"), staff("b")), ("StaffList", "Staff"), records.staff, fingerprints=prints)
    )
    assert rows[0] == {"uuid": "a", UNCHANGED: True}
    assert rows[1]["uuid"] == "b"


def test_the_key_of_a_3_0_record_is_its_trailing_uuid():
    body = staff_list(b"<Staff><ID>12</ID><Name>N</Name><UUID>u-12</UUID></Staff>")
    prints = _prints({})
    [row] = iter_items(body, ("StaffList", "Staff"), records.staff, fingerprints=prints)
    assert row["uuid"] == "u-12"
    [again] = iter_items(body, ("StaffList", "Staff"), records.staff, fingerprints=_prints({"u-12": row["row_hash"]}))
    assert again == {"uuid": "u-12", UNCHANGED: True}


def _prints(stored: dict[str, bytes]) -> Fingerprints:
    return Fingerprints("uuid", ("uuid", "id"), dict(stored), skip_known=False)
