"""The XPM API client: errors, streaming XML parsing, records and the request loop."""
