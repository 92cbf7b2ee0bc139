"""Status and error texts leave the process masked like the events they stand beside.

An action's status reason (a failing condition or metric, an internal error),
the watch errors of a snapshot and the channel's placement and ``get_source``
errors go to the hub. Before: ``users[alias]`` with ``alias = password`` put
``key 'hunter2-...' not found`` in the action's status while the same hit's
snapshot redacted ``password``; an exception text holding a key went out as it
was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import marked_lines
from runtime_agent import Engine, channel
from runtime_agent.config import AgentConfig
from runtime_agent.errors import LocationError
from runtime_agent.redact import REDACTED

STATUS_APP = Path(__file__).parent / "rt_targets" / "status_app.py"
LINES = marked_lines(STATUS_APP)
#: No pattern recognises it: only its name (``password``) makes it secret.
SECRET = "hunter2-correct-horse"
#: Recognised by its shape wherever it appears.
STRIPE = "sk_live_" + "a1B2c3D4e5F6g7H8i9J0"


def at(marker: str) -> str:
    return f"rt_targets/status_app.py:{LINES[marker]}"


def states(engine: Engine, action_id: str) -> dict[str, str]:
    """The action's state events, state to message (an action in error is retired,
    so its status is gone and these are what the hub gets)."""
    return {
        e["state"]: str(e.get("message"))
        for e in engine.drain()
        if e["type"] == "state" and e["action"] == action_id
    }


@pytest.mark.parametrize(
    ("kind", "expression"),
    [
        ("condition", "users[alias] > 1"),  # KeyError naming the key
        ("condition", "int(alias) > 1"),  # ValueError quoting the text
        ("metric", "users[alias]"),
        ("metric", "int(alias)"),
    ],
)
def test_a_failing_expression_does_not_quote_a_secret_of_the_hit(kind, expression):
    from rt_targets import status_app

    with Engine() as eng:
        if kind == "condition":
            placed = eng.add_counter(at("login_return"), condition=expression)
        else:
            placed = eng.add_metric(at("login_return"), expression)
        status_app.login(SECRET, {})
        during = eng.status(placed.id).message  # shown while the action keeps trying
        for _ in range(25):
            status_app.login(SECRET, {})
        after = states(eng, placed.id)
    assert REDACTED in during and SECRET not in during
    assert "failed" in after["error"] and REDACTED in after["error"]
    assert all(SECRET not in text for text in after.values()), after


def test_a_duration_condition_failing_on_entry_is_masked_too():
    from rt_targets import status_app

    with Engine() as eng:
        placed = eng.add_duration("rt_targets.status_app:verify", condition="users[copy] > 1")
        status_app.verify(SECRET, SECRET, {})
        message = eng.status(placed.id).message
    assert REDACTED in message and SECRET not in message


def test_a_snapshots_watch_error_does_not_quote_a_secret_of_the_hit():
    from rt_targets import status_app

    with Engine() as eng:
        placed = eng.add_snapshot(at("login_return"), watch=["users[alias]", "found"])
        status_app.login(SECRET, {})
        (event,) = [e for e in eng.drain() if e["type"] == "snapshot"]
    error = event["watch"]["users[alias]"]
    assert error["type"] == "error"
    assert SECRET not in error["notCaptured"] and REDACTED in error["notCaptured"]
    assert placed.id == event["action"]


def test_a_snapshots_watch_error_masks_value_patterns():
    """A watch's error text is masked like captured text: a key in a vendor's
    format, built by the expression and not a secret of the hit, is masked."""
    from rt_targets import status_app

    built = "'sk_live_' + 'a1B2c3D4e5F6g7H8i9J0'"
    with Engine() as eng:
        eng.add_snapshot(at("charge_return"), watch=[f"limits[{built}]"])
        status_app.charge("4111", {"visa": 1})
        (event,) = [e for e in eng.drain() if e["type"] == "snapshot"]
    error = event["watch"][f"limits[{built}]"]
    assert error["type"] == "error" and "not found" in error["notCaptured"]
    assert STRIPE not in error["notCaptured"] and REDACTED in error["notCaptured"]


def test_a_log_field_error_is_masked_in_the_line():
    from rt_targets import status_app

    with Engine() as eng:
        eng.add_log(at("login_return"), "lookup {users[alias]}")
        status_app.login(SECRET, {})
        (event,) = [e for e in eng.drain() if e["type"] == "log"]
    assert SECRET not in event["message"] and REDACTED in event["message"]


def test_an_internal_error_text_is_masked(monkeypatch):
    """An exception from inside a hook (a bug of ours, or the host's code reached by
    one) ends the action; its text goes out masked, with the hit's secrets."""
    from rt_targets import status_app
    from runtime_agent import actions

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError(f"api_key={STRIPE} for {SECRET}")

    monkeypatch.setattr(actions, "take_snapshot", broken)
    with Engine() as eng:
        placed = eng.add_snapshot(at("login_return"))
        status_app.login(SECRET, {})
        shown = states(eng, placed.id)
    assert "internal error: ValueError" in shown["error"]
    assert all(STRIPE not in text and SECRET not in text for text in shown.values()), shown


class Upload:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: dict[str, Any], token: Any = None) -> None:
        self.posted.append(body)


def channel_of(eng: Engine) -> tuple[channel.Channel, Upload]:
    chan = channel.Channel(eng, AgentConfig(hub="http://127.0.0.1:9", token=None, service="t"))
    upload = Upload()
    chan._upload = upload  # type: ignore[assignment]
    chan.agent_id = "a1"
    return chan, upload


@pytest.mark.parametrize(
    "raised",
    [
        RuntimeError(f"module init failed: Authorization: Bearer {STRIPE}"),
        KeyError(STRIPE),  # a KeyError whose key is the secret
        LocationError(f"cannot read /srv/app.py?token={STRIPE}"),
    ],
)
def test_get_source_errors_are_masked(monkeypatch, raised):
    def describe(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(channel.source, "describe", describe)
    with Engine() as eng:
        chan, upload = channel_of(eng)
        chan._answer({"id": "q1", "kind": "source", "args": {"location": "app.py:1"}})
    (answer,) = upload.posted
    assert STRIPE not in answer["error"] and REDACTED in answer["error"]


def test_placement_errors_sent_to_the_hub_are_masked(monkeypatch):
    def place(*args: Any, **kwargs: Any) -> None:
        raise KeyError(f"ghp_{'a' * 36}")

    monkeypatch.setattr(channel, "place_from_spec", place)
    with Engine() as eng:
        chan, _ = channel_of(eng)
        chan._place("a-1", {"kind": "log", "location": "x.py:1"})
    (report,) = chan._reports
    assert "ghp_" not in report["message"] and REDACTED in report["message"]
