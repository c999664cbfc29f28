"""Streaming, defensive reading of XPM's XML.

Bodies are parsed as they arrive (lxml `iterparse`), one record at a time, so a 50 MB client list
needs little memory. Anything with a DOCTYPE is refused before its first record is handed over:
XPM never sends one, and it is how entity-expansion ("billion laughs") and external-entity attacks
arrive. Entities are not resolved and nothing is fetched from the network in any case.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar

from lxml import etree

from xpm_sync.plain_errors import XpmBusinessError, XpmPayloadError

T = TypeVar("T")
# The key a record carries instead of its fields when its fingerprint matched the stored row's.
UNCHANGED = "_unchanged"


def _refuse_declarations(elem: Any) -> None:
    """Refuse a document that declares a DOCTYPE (and with it any entity), decided on what the
    parser read rather than on the first bytes, so that a comment or processing instruction before
    it, or another encoding (UTF-16), changes nothing. Called before the first record is handed
    over: entities are never resolved in any case, so nothing was expanded or fetched."""
    info = elem.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XpmPayloadError("XPM's answer declares a DOCTYPE or entities; refused as unsafe")


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
    single = len(path) == 1
    reader = _Reader(path, convert, method, max_rows, fingerprints)
    # Only elements named like a record are handed to Python (in the casings XPM is seen to use);
    # everything else is parsed in C and looked at once, in the tree, at the end. A record in
    # another casing, or anything foreign in the list, is still found: see `_Reader.settle`.
    names = sorted({path[-1], path[-1].lower(), path[-1].upper(), path[-1].capitalize()})
    try:
        parser = etree.iterparse(
            stream,
            events=("end",),
            tag=names,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        held: list[T] = []
        checked = False
        for _event, elem in parser:
            if not checked:
                _refuse_declarations(elem)
                checked = True
            for record in reader.take(elem):
                if single:
                    held.append(record)
                else:
                    yield record
        root = parser.root
        if root is None:
            raise XpmPayloadError("XPM's answer was empty")
        _refuse_declarations(root)
        if local(root.tag) != "response":
            raise XpmPayloadError(f"expected an XPM <Response>, got <{root.tag}>")
        status, description = _status(root)
        if status == "ERROR":
            raise XpmBusinessError(description or "no description given", method=method)
        if status != "OK":
            raise XpmPayloadError(f"XPM's answer has no OK status ({status!r})")
        if not shaped:
            return
        for record in reader.settle(root):
            if single:
                held.append(record)
            else:
                yield record
    except etree.XMLSyntaxError as exc:
        if "amplification" in (exc.msg or ""):
            # libxml2 stopped a nest of entity declarations before they could expand.
            raise XpmPayloadError(
                f"XPM's answer declares a DOCTYPE or entities; refused as unsafe ({exc.msg})"
            ) from None
        raise XpmPayloadError(f"XPM's answer is not well-formed XML (truncated or malformed): {exc.msg}") from None
    if single and not held:
        raise XpmPayloadError(f"XPM's answer to {method or 'the call'} has no <{path[0]}>: not the expected shape")
    beside_names = {k.lower(): v for k, v in (beside or {}).items()}
    extras = {beside_names[local(e.tag)]: (e.text or "").strip() for e in root if local(e.tag) in beside_names}
    for record in held:
        if isinstance(record, dict):
            for key, value in extras.items():
                if value and not record.get(key):
                    record[key] = value
        yield record


def _status(root: Any, *, before: Any = None) -> tuple[str | None, str]:
    """`<Status>` and `<ErrorDescription>` of a `<Response>` (the first of each, before `before`)."""
    status: str | None = None
    description = ""
    for child in root:
        if child is before:
            break
        name = local(child.tag)
        if name == "status" and status is None:
            status = (child.text or "").strip().upper()
        elif name == "errordescription" and not description:
            description = (child.text or "").strip()
    return status, description


class _Reader:
    """Turns record elements into records as the parser reaches their ends."""

    def __init__(self, path: tuple[str, ...], convert: Callable[[Any], Any], method: str, max_rows: int | None,
                 fingerprints: Any) -> None:  # fmt: skip
        self.path = path
        self.want = ("response",) + tuple(p.lower() for p in path)
        self.item = self.want[-1]
        self.single = len(path) == 1
        self.convert = convert
        self.method = method
        self.max_rows = max_rows
        self.fingerprints = fingerprints
        self.count = 0
        self.status_ok = False
        self.done: Any = None  # the last record read: emptied, kept until the next one

    def _read(self, elem: Any) -> Any:
        self.count += 1
        if self.max_rows is not None and self.count > self.max_rows:
            raise XpmPayloadError(
                f"XPM's answer to {self.method or 'the call'} holds over {self.max_rows:,} records; refused as "
                "implausible ([xpm_sync] max_answer_rows)"
            )
        if self.fingerprints is None:
            return self.convert(elem)
        key, fingerprint, same = self.fingerprints.check(elem)
        if same:
            return {self.fingerprints.key: key, UNCHANGED: True}
        record = self.convert(elem)
        record["row_hash"] = fingerprint
        return record

    def _check_status(self, elem: Any) -> None:
        """The records must follow an OK `<Status>`. The parser reads ahead, so the tree may already
        hold a `<Status>` sent after them: only one before the records' branch counts."""
        top = elem
        while (above := top.getparent()).getparent() is not None:
            top = above
        status, _description = _status(above, before=top)
        if status != "OK":
            raise XpmPayloadError(f"XPM answered records before an OK status ({status!r})")
        self.status_ok = True

    def take(self, elem: Any) -> Iterator[Any]:
        """The records this element ends: itself, after any the parser did not hand over before it."""
        parent = elem.getparent()
        if parent is None or _path(elem) != self.want:
            return  # the record's name used elsewhere (a job's <Client>): part of something else
        if not self.status_ok:
            self._check_status(elem)
        if not self.single:
            # What precedes this record in the list: the record read last (emptied), or elements
            # the parser did not hand over: a record in an unusual casing, or something foreign.
            while (first := parent[0]) is not elem:
                if first is not self.done:
                    yield from self._other(first, parent)
                del parent[0]
        yield self._read(elem)
        elem.clear(keep_tail=False)
        self.done = elem

    def _other(self, elem: Any, parent: Any) -> Iterator[Any]:
        if local(elem.tag) == self.item:
            yield self._read(elem)
            return
        raise XpmPayloadError(f"XPM's <{parent.tag}> list holds <{elem.tag}>, not <{self.path[-1]}>")

    def settle(self, root: Any) -> Iterator[Any]:
        """At the end (the status is OK): the list must be there, and whatever the parser did not
        hand over is read now."""
        holder = root
        for name in self.want[1:-1]:
            holder = next((c for c in holder if local(c.tag) == name), None)
            if holder is None:
                raise XpmPayloadError(
                    f"XPM's answer to {self.method or 'the call'} has no <{self.path[0]}> list: not the expected shape"
                )
        if self.single:
            if self.count == 0:
                yield from (self._read(e) for e in holder if local(e.tag) == self.item)
            return
        for elem in list(holder):
            if elem is not self.done:
                yield from self._other(elem, holder)
            holder.remove(elem)


def read_status(source: IO[bytes] | bytes, *, method: str = "") -> None:
    """Check an answer that carries no records (writes): OK, or raise."""
    for _ in iter_items(source, ("__none__",), lambda e: e, method=method, shaped=False):
        pass
