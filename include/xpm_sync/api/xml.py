"""Streaming, defensive reading of XPM's XML.

Bodies are parsed as they arrive (lxml `iterparse`), one record at a time, so a 50 MB client list
needs little memory. Anything with a DOCTYPE is refused before parsing: XPM never sends one, and
it is how entity-expansion ("billion laughs") and external-entity attacks arrive. Entities are not
resolved and nothing is fetched from the network in any case.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar

from lxml import etree

from xpm_sync.errors import XpmBusinessError, XpmPayloadError

T = TypeVar("T")
# The key a record carries instead of its fields when its fingerprint matched the stored row's.
UNCHANGED = "_unchanged"
PROLOG_LIMIT = 1 << 20
_ROOT_START = re.compile(rb"<[A-Za-z_]")


class _Guarded(io.RawIOBase):
    """A stream that refuses XML carrying a DOCTYPE or entity declaration before its root element."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        head = b""
        while (found := _ROOT_START.search(head)) is None:
            chunk = source.read(65536)
            if not chunk:
                break
            head += chunk
            if len(head) > PROLOG_LIMIT:
                raise XpmPayloadError("XPM's answer has over 1 MB before its first element; refused as unsafe")
        prolog = (head[: found.start()] if found else head).upper()
        if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
            raise XpmPayloadError("XPM's answer declares a DOCTYPE or entities; refused unread as unsafe")
        self._head = head
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._offset < len(self._head):
            chunk = self._head[self._offset : self._offset + len(buffer)]
            self._offset += len(chunk)
        else:
            chunk = self._source.read(len(buffer)) or b""
        buffer[: len(chunk)] = chunk
        return len(chunk)


def local(tag: object) -> str:
    """An element's name, lower-cased: XPM's casing is not always the documented one."""
    return tag.lower() if isinstance(tag, str) else ""


def _path(elem: Any) -> tuple[str, ...]:
    names = []
    while elem is not None:
        names.append(local(elem.tag))
        elem = elem.getparent()
    return tuple(reversed(names))


def iter_items(
    source: IO[bytes] | bytes,
    path: tuple[str, ...],
    convert: Callable[[Any], T],
    *,
    method: str = "",
    beside: Mapping[str, str] | None = None,
    max_rows: int | None = None,
    shaped: bool = True,
    fingerprints: Any = None,
) -> Iterator[T]:
    """Yield `convert(element)` for each element at `path` under `<Response>`, checking `<Status>`.

    `path` names the elements below `<Response>`: `("Clients", "Client")` for a list, `("Client",)`
    for one record. The answer must have that shape: a list answer without its `<Clients>`
    element, or with anything but `<Client>` inside it, and a record answer without its record, are
    `XpmPayloadError`s, never "nothing there". `beside` maps elements XPM puts beside a single
    record (`{"WebUrl": "web_url"}`, any case) to the record's key. A `<Status>ERROR</Status>` answer raises
    `XpmBusinessError`; broken XML raises `XpmPayloadError` (records yielded before the break must
    not be committed); more than `max_rows` records raise `XpmPayloadError`. With `shaped` off
    (answers to writes, which carry no records) only the status is checked. With `fingerprints`
    (`xpm_sync.api.fingerprint.Fingerprints`), a record whose fingerprint matches the stored row's
    is yielded as `{key: ..., UNCHANGED: True}` without being converted, and every other record
    carries its fingerprint as `row_hash`.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    want = ("response",) + tuple(p.lower() for p in path)
    item, wrapper = want[-1], want[:-1]
    holder = wrapper[-1]  # the element records sit in: the list's, or <Response> for one record
    single = len(path) == 1
    status: str | None = None
    description = ""
    wrapper_seen = single
    held: list[T] = []
    extras: dict[str, str] = {}
    beside_names = {k.lower(): v for k, v in (beside or {}).items()}
    count = 0
    try:
        parser = etree.iterparse(
            _Guarded(stream),
            events=("end",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        for _event, elem in parser:
            # Most elements are fields inside a record: look at the parent's name before walking the path.
            parent = elem.getparent()
            above = local(parent.tag) if parent is not None else ""
            if above == holder:
                name = local(elem.tag)
                if name == item and _path(elem) == want:
                    if status != "OK":
                        raise XpmPayloadError(f"XPM answered records before an OK status ({status!r})")
                    count += 1
                    if max_rows is not None and count > max_rows:
                        raise XpmPayloadError(
                            f"XPM's answer to {method or 'the call'} holds over {max_rows:,} records; refused as "
                            "implausible ([xpm_sync] max_answer_rows)"
                        )
                    if fingerprints is None:
                        record = convert(elem)
                    else:
                        key, fingerprint, same = fingerprints.check(elem)
                        if same:
                            record = {fingerprints.key: key, UNCHANGED: True}  # type: ignore[assignment]
                        else:
                            record = convert(elem)
                            record["row_hash"] = fingerprint.hex()  # type: ignore[index]
                    if single:
                        held.append(record)
                    else:
                        yield record
                    elem.clear(keep_tail=False)
                    while elem.getprevious() is not None:
                        del parent[0]
                    continue
                if not single and _path(parent) == wrapper:
                    raise XpmPayloadError(f"XPM's <{path[0]}> list holds <{elem.tag}>, not <{path[-1]}>")
            if above != "response" or parent.getparent() is not None:
                continue
            name = local(elem.tag)
            if name == "status":
                status = (elem.text or "").strip().upper()
            elif name == "errordescription":
                description = (elem.text or "").strip()
            elif name == wrapper[-1]:
                wrapper_seen = True
            elif name in beside_names:
                extras[beside_names[name]] = (elem.text or "").strip()
        root = parser.root
    except etree.XMLSyntaxError as exc:
        raise XpmPayloadError(f"XPM's answer is not well-formed XML (truncated or malformed): {exc.msg}") from None
    if root is None:
        raise XpmPayloadError("XPM's answer was empty")
    if local(root.tag) != "response":
        raise XpmPayloadError(f"expected an XPM <Response>, got <{root.tag}>")
    if status == "ERROR":
        raise XpmBusinessError(description or "no description given", method=method)
    if status != "OK":
        raise XpmPayloadError(f"XPM's answer has no OK status ({status!r})")
    if not shaped:
        return
    if not wrapper_seen:
        raise XpmPayloadError(f"XPM's answer to {method or 'the call'} has no <{path[0]}> list: not the expected shape")
    if single and not held:
        raise XpmPayloadError(f"XPM's answer to {method or 'the call'} has no <{path[0]}>: not the expected shape")
    for record in held:
        if isinstance(record, dict):
            for key, value in extras.items():
                if value and not record.get(key):
                    record[key] = value
        yield record


def read_status(source: IO[bytes] | bytes, *, method: str = "") -> None:
    """Check an answer that carries no records (writes): OK, or raise."""
    for _ in iter_items(source, ("__none__",), lambda e: e, method=method, shaped=False):
        pass
