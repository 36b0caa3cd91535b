from __future__ import annotations

import logging

import orjson
from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.keys import PROJECT_KEY_RE, derive_project_key, parse_task_key, task_key
from planboard.events.envelope import Event, family_of, topic_for
from planboard.logs import JsonFormatter, request_id_var


def test_json_log_lines_carry_request_id_and_extras() -> None:
    token = request_id_var.set("req-1")
    try:
        record = logging.LogRecord(
            "planboard.x", logging.INFO, __file__, 1, "hello %s", ("world",), None
        )
        record.route = "/healthz"
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-1"
    assert line["route"] == "/healthz"
    assert line["level"] == "info"


def test_project_keys() -> None:
    assert derive_project_key("Plan Board") == "PB"
    assert derive_project_key("Bookshelf") == "BOOK"
    assert derive_project_key("Bookshelf", {"BOOK"}) == "BOOK2"
    assert derive_project_key("日本") == "PRJ"
    assert parse_task_key("PB-12") == ("PB", 12)
    assert parse_task_key("pb-12") is None
    assert parse_task_key("PB-0") is None
    assert task_key("PB", 3) == "PB-3"


@given(st.text(max_size=60), st.sets(st.from_regex(PROJECT_KEY_RE, fullmatch=True), max_size=20))
def test_derived_keys_are_valid_and_free(name: str, taken: set[str]) -> None:
    key = derive_project_key(name, taken)
    assert PROJECT_KEY_RE.match(key)
    assert key not in taken


def test_event_envelope_round_trip() -> None:
    event = Event(type="task.created", key="p1", workspace_id="w1", data={"title": "Ünïcode ✓"})
    assert Event.from_json(event.to_json()) == event
    assert family_of("task.created") == "task"
    assert topic_for("planboard.", "comment.created") == "planboard.comment"
