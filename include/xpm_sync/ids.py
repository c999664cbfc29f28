"""Identifiers people type (on the command line, the Trigger form, the XPM page), checked before any
call to XPM and quoted when they go into a URL. Light enough for DAG files to import."""

from __future__ import annotations

import re
from urllib.parse import quote

from xpm_sync.plain_errors import XpmInputError

UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
# XPM job numbers are a prefix and a number (J000309) unless the practice set its own scheme:
# letters, digits, dots, dashes and underscores, never a slash.
JOB_NUMBER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$"
CLIENT_HELP = "a client UUID looks like 0183f65c-08c6-47b7-af05-3da072e901ae (XPM shows it in the client's address)"
JOB_HELP = "a job number looks like J000309: letters, digits, '.', '-' or '_'"


def client_uuid(value: str) -> str:
    """The UUID, or an `XpmInputError` saying what a client UUID looks like."""
    text = value.strip()
    if not re.fullmatch(UUID_PATTERN, text):
        raise XpmInputError(f"{value!r} is not a client UUID: {CLIENT_HELP}.")
    return text


def job_number(value: str) -> str:
    """The job number, or an `XpmInputError` saying what a job number looks like."""
    text = value.strip()
    if not re.fullmatch(JOB_NUMBER_PATTERN, text):
        raise XpmInputError(f"{value!r} is not a job number: {JOB_HELP}.")
    return text


def in_path(value: str) -> str:
    """`value` as one URL path segment."""
    return quote(value, safe="")
