"""Hostile or broken XML is refused without being expanded or fetched."""

from __future__ import annotations

import io

import pytest

from xpm_sync.api import records
from xpm_sync.api.xml import iter_items
from xpm_sync.errors import XpmPayloadError

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Response><Status>OK</Status><StaffList><Staff><UUID>x</UUID><Name>&lol9;</Name></Staff></StaffList></Response>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response><Status>OK</Status><StaffList><Staff><UUID>x</UUID><Name>&xxe;</Name></Staff></StaffList></Response>"""

COMMENT_FIRST = b"<!-- a comment first, with an <element> in it -->" + EXTERNAL.split(b"?>", 1)[1]
PI_FIRST = b"<?xml version='1.0'?><?hidden by the old guard?>" + EXTERNAL.split(b"?>", 1)[1]
UTF16 = LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>').decode().encode("utf-16")
PADDED = (
    b"<?xml version='1.0'?>"
    + b" " * 10_000
    + b'<!DOCTYPE r [<!ENTITY e "boom">]><Response><Status>OK</Status></Response>'
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(LAUGHS, id="billion-laughs"),
        pytest.param(EXTERNAL, id="external-entity"),
        pytest.param(PADDED, id="late-doctype"),
        pytest.param(COMMENT_FIRST, id="comment-before-the-doctype"),
        pytest.param(PI_FIRST, id="instruction-before-the-doctype"),
        pytest.param(UTF16, id="utf-16"),
    ],
)
def test_documents_with_a_doctype_are_refused_before_any_record_is_read(body):
    converted = []
    with pytest.raises(XpmPayloadError, match="DOCTYPE"):
        list(iter_items(io.BytesIO(body), ("StaffList", "Staff"), converted.append))
    assert converted == []  # refused before a record, and with it any entity, reached the reader


def test_an_answer_in_utf_16_without_a_doctype_is_read():
    body = "<?xml version='1.0' encoding='UTF-16'?><Response><Status>OK</Status><StaffList>"
    body += "<Staff><UUID>x</UUID><Name>Zoë</Name></Staff></StaffList></Response>"
    [row] = iter_items(io.BytesIO(body.encode("utf-16")), ("StaffList", "Staff"), records.staff)
    assert (row["uuid"], row["name"]) == ("x", "Zoë")


def test_an_undeclared_entity_is_an_error_not_a_lookup():
    staff = b"<Staff><UUID>x</UUID><Name>&passwd;</Name></Staff>"
    body = b"<Response><Status>OK</Status><StaffList>" + staff + b"</StaffList></Response>"
    with pytest.raises(XpmPayloadError, match="not well-formed"):
        list(iter_items(body, ("StaffList", "Staff"), records.staff))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b"<Response><Status>OK</Status><StaffList><Staff><UUID>a</UUID>", "not well-formed", id="truncated"
        ),
        pytest.param(b"<Response><Status>OK</Stat></Response>", "not well-formed", id="malformed"),
        pytest.param(b"", "not well-formed|empty", id="empty"),
        pytest.param(b"<html><body>Gateway error</body></html>", "expected an XPM <Response>", id="html"),
        pytest.param(b"<Response><StaffList/></Response>", "no OK status", id="no-status"),
    ],
)
def test_broken_answers_are_payload_errors(body, message):
    with pytest.raises(XpmPayloadError, match=message):
        list(iter_items(body, ("StaffList", "Staff"), records.staff))


def test_records_before_a_break_are_yielded_then_the_break_raises():
    body = b"<Response><Status>OK</Status><StaffList><Staff><UUID>a</UUID></Staff><Staff><UUID>b</U"
    rows = iter_items(body, ("StaffList", "Staff"), records.staff)
    assert next(rows)["uuid"] == "a"
    with pytest.raises(XpmPayloadError):
        next(rows)  # so callers must commit only after the whole answer parsed


def test_a_large_list_is_read_in_bounded_memory():
    import tracemalloc

    item = b"<Client><UUID>%08d</UUID><Name>" + b"x" * 400 + b"</Name><IsArchived>No</IsArchived></Client>"

    def body():
        yield b"<Response><Status>OK</Status><Clients>"
        for i in range(50_000):
            yield item.replace(b"%08d", str(i).zfill(8).encode())
        yield b"</Clients></Response>"

    class Stream(io.RawIOBase):
        def __init__(self):
            self.parts, self.buffer = body(), b""

        def readable(self):
            return True

        def readinto(self, b):
            while len(self.buffer) < len(b):
                try:
                    self.buffer += next(self.parts)
                except StopIteration:
                    break
            n = min(len(b), len(self.buffer))
            b[:n], self.buffer = self.buffer[:n], self.buffer[n:]
            return n

    tracemalloc.start()
    count = sum(1 for _ in iter_items(Stream(), ("Clients", "Client"), records.client))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 50_000
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a ~23 MB answer"
