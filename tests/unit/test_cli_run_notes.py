"""What `mlcycle run` prints under a step: its summary's gate failures, quarantine and warnings."""

from __future__ import annotations

from mlcycle.cli.run import notes


def test_validate_warnings_are_a_count_with_the_first_few() -> None:
    # The validate step's summary: a count and the first three (it crashed the listener).
    summary = {"errors": 0, "warnings": 5, "first_warnings": ["a", "b", "c"]}
    assert notes(summary) == [
        ("warning", "a"),
        ("warning", "b"),
        ("warning", "c"),
        ("warning", "… 2 more (mlcycle data report)"),
    ]


def test_split_warnings_are_a_list_and_gate_and_quarantine_lines_come_first() -> None:
    summary = {"warnings": ["month tracks time"], "failed": ["auc below"], "quarantine": ["q"]}
    assert notes(summary) == [
        ("gate", "auc below"),
        ("quarantined", "q"),
        ("warning", "month tracks time"),
    ]


def test_no_warnings_print_nothing() -> None:
    assert notes({"warnings": 0, "first_warnings": []}) == []
    assert notes({"warnings": 2, "first_warnings": ["a", "b"]}) == [
        ("warning", "a"),
        ("warning", "b"),
    ]
    assert notes({}) == []
