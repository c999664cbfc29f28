"""docs/schema.md is what the models say, and its example queries answer what XPM's records say."""

from __future__ import annotations

from tests import queries
from tests.conftest import REPO
from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import sync
from xpm_sandbox import work
from xpm_sync import catalog
from xpm_sync.store import schema_doc


def test_docs_schema_md_is_generated_from_the_models():
    assert (REPO / "docs" / "schema.md").read_text() == schema_doc.render(), (
        "regenerate: python -m xpm_sync.store.schema_doc > docs/schema.md"
    )


def test_the_example_queries_answer_what_the_practices_records_say(xpm: Xpm):
    xpm.connect()
    sync(xpm, catalog.ALL, full=True)
    p = xpm.srv.sandbox.main
    found = queries.run(xpm.engine, p.tenant_id)
    expected = queries.plain(work.answers(p))
    assert all(expected[name] for name in expected)  # each query has rows to compare
    assert found == expected
