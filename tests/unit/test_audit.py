"""The audit entry's tag JSON: the same keys and bytes as the trails already in registries."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mlkit.audit import ABORTED, DONE, PENDING, REFUSED, SUPERSEDED, UNREADABLE, AuditEntry

KEY = "mlkit.audit.20261127T105250.579000Z.1a2b3c4d"
GATES = [{"gate": "f1 >= 0.85", "passed": True, "detail": "f1 = 0.9100 (needs >= 0.85)"}]


def stored(**changes: Any) -> dict[str, Any]:
    """An entry's document exactly as earlier mlkit versions wrote it."""
    return {
        "time": "2026-11-27T10:52:50.579Z",
        "action": "promote",
        "model": "churn",
        "stage": "production",
        "version": "3",
        "from_version": "2",
        "to_version": "3",
        "from_stage": "staging",
        "actor": "Test User <test@example.com>",
        "reason": "better recall",
        "gates": GATES,
        "state": DONE,
        **changes,
    }


def as_tag(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, default=str)


def entry(**changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "id": KEY,
        "time": "2026-11-27T10:52:50.579Z",
        "action": "promote",
        "model": "churn",
        "stage": "production",
        "to_version": "3",
        "from_version": "2",
        "from_stage": "staging",
        "actor": "Test User <test@example.com>",
        "reason": "better recall",
        "gates": tuple(GATES),
        "state": DONE,
    }
    return AuditEntry(**{**fields, **changes})


def test_the_tag_json_is_the_documented_shape() -> None:
    assert entry().to_json() == as_tag(stored())


@pytest.mark.parametrize(
    ("changes", "document"),
    [
        ({"state": PENDING}, stored(state="pending")),
        ({"state": REFUSED, "action": "refuse"}, stored(state="refused", action="refuse")),
        ({"state": ABORTED, "recovered": True}, stored(state="aborted", recovered=True)),
        ({"state": SUPERSEDED, "superseded_by": "4"}, stored(state="superseded", superseded_by="4")),
        ({"state": SUPERSEDED}, stored(state="superseded", superseded_by=None)),  # the alias was deleted meanwhile
        ({"from_version": None, "from_stage": None, "gates": ()}, stored(from_version=None, from_stage=None, gates=[])),
    ],
)
def test_optional_keys_appear_only_when_set(changes: dict[str, Any], document: dict[str, Any]) -> None:
    assert entry(**changes).to_json() == as_tag(document)


@pytest.mark.parametrize(
    "document",
    [
        stored(),
        stored(state="done", recovered=True),
        stored(state="superseded", superseded_by="5"),
        stored(action="rollback", from_stage=None, gates=[]),
        stored(note="written by a newer mlkit"),  # unknown keys survive a rewrite
    ],
)
def test_reading_and_rewriting_a_tag_changes_no_byte(document: dict[str, Any]) -> None:
    text = as_tag(document)
    read = AuditEntry.from_tag(KEY, text)
    assert read.id == KEY
    assert read.to_json() == text


def test_settling_a_read_entry_keeps_every_other_key() -> None:
    read = AuditEntry.from_tag(KEY, as_tag(stored(state="pending", note="kept")))
    settled = replace(read, state=DONE, recovered=True)
    assert json.loads(settled.to_json()) == stored(state="done", recovered=True, note="kept")


def test_fields_read_from_the_tag() -> None:
    read = AuditEntry.from_tag(KEY, as_tag(stored()))
    assert read == entry()
    assert (read.to_version, read.from_version, read.gates) == ("3", "2", tuple(GATES))


def test_to_dict_is_the_stored_document_plus_its_key() -> None:
    data = entry().to_dict()
    assert data == {**stored(), "id": KEY}
    assert list(data) == [*sorted(stored()), "id"]  # what `mlkit models history --json` has always printed


@pytest.mark.parametrize("text", ["{not json", "42", "[1, 2]"])
def test_a_tag_that_is_not_an_entry_is_unreadable(text: str) -> None:
    read = AuditEntry.from_tag(KEY, text)
    assert read.state == UNREADABLE
    assert read.to_dict() == {"state": "unreadable", "raw": text, "id": KEY}


def test_a_new_entry_is_stamped_now_under_a_key_that_starts_with_the_time() -> None:
    first = AuditEntry.new("promote", "churn", "staging", "1", actor="me", reason="", from_version=None, gates=GATES)
    stamp = first.id[len("mlkit.audit.") :]
    assert first.time.endswith("Z")
    assert stamp[:15] == first.time[:19].replace("-", "").replace(":", "")  # 20261127T105250
    assert json.loads(first.to_json()) == {
        "time": first.time,
        "action": "promote",
        "model": "churn",
        "stage": "staging",
        "version": "1",
        "from_version": None,
        "to_version": "1",
        "from_stage": None,
        "actor": "me",
        "reason": "",
        "gates": GATES,
        "state": "pending",
    }
