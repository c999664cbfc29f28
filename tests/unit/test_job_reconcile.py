"""Which job numbers the reconciliation asks XPM for."""

from __future__ import annotations

from xpm_sync.sync.job_reconcile import gaps


def test_the_numbers_missing_inside_a_sequence():
    assert gaps(["J000001", "J000002", "J000005"], set()) == ["J000003", "J000004"]


def test_numbers_xpm_said_it_does_not_know_are_not_asked_again():
    assert gaps(["J000001", "J000004"], {"J000002"}) == ["J000003"]


def test_each_prefix_and_width_is_its_own_sequence():
    numbers = ["J000010", "J000012", "TAX-7", "TAX-9", "8", "9"]
    assert gaps(numbers, set()) == ["J000011", "TAX-8"]


def test_numbering_that_is_not_sequential_is_not_checked():
    # Two jobs a thousand numbers apart say nothing about 998 missing jobs.
    assert gaps(["J000001", "J001000"], set()) == []


def test_numbers_of_other_shapes_are_ignored():
    assert gaps(["", "J-A", "ABC"], set()) == []
