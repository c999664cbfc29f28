"""The entities are named in one place (`catalog`, read by DAG files at parse time) and implemented
in one (`sync.entities`): the two must be the same set, in the same order."""

from __future__ import annotations

from xpm_sync import catalog
from xpm_sync.sync.entities import ENTITIES


def test_every_named_entity_is_implemented_and_nothing_else():
    assert tuple(ENTITIES) == catalog.ALL


def test_the_reference_entities_are_the_ones_implemented_as_reference_lists():
    assert tuple(n for n, spec in ENTITIES.items() if spec.group == "reference") == catalog.REFERENCE


def test_what_must_run_first_names_only_entities_that_run_earlier():
    order = {name: i for i, name in enumerate(catalog.ALL)}
    for name, upstream in catalog.UPSTREAM.items():
        assert all(order[u] < order[name] for u in upstream), name
