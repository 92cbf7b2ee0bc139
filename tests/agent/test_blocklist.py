"""RUNTIME_AGENT_BLOCKLIST, written like locations: placement, get_source, callers' frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import at, events_of, marked_lines
from runtime_agent import BlockedLocation, Engine
from runtime_agent import source as live_source
from runtime_agent.locate import Blocklist

TARGETS = Path(__file__).parent / "rt_targets"
APP = marked_lines(TARGETS / "secrets_app.py")
CHARGE = marked_lines(TARGETS / "payments" / "charge.py")


@pytest.mark.parametrize(
    ("entry", "path", "module", "closed"),
    [
        ("payments/charge.py", "/srv/app/payments/charge.py", None, True),
        ("payments/charge.py", "/srv/app/mypayments/charge.py", None, False),
        ("payments/charge.py", "/srv/app/payments/charge.pyc", None, False),
        ("charge.py", "/srv/app/payments/charge.py", None, True),
        ("payments/", "/srv/app/payments/sub/x.py", None, True),
        ("payments/*", "/srv/app/payments/sub/x.py", None, True),
        ("*_secret.py", "/srv/app/db_secret.py", None, True),
        ("/opt/vendor/*", "/opt/vendor/lib/a.py", None, True),
        ("/opt/vendor/*", "/srv/opt/vendor/a.py", None, False),
        ("payments.charge", "/x/y.py", "payments.charge", True),
        ("payments.charge", "/x/y.py", "payments.chargeback", False),
        ("payments.charge", "/srv/src/payments/charge.py", "src.payments.charge", True),
        ("payments.charge", "/srv/app/payments/charge.py", "__main__", True),
        ("payments", "/srv/app/payments/sub/x.py", "payments.sub.x", True),
        ("payments", "/srv/app/payments.py", None, True),
        ("payments", "/srv/app/paymentsx/a.py", "paymentsx.a", False),
        ("payments.*", "/x.py", "payments.refund", True),
    ],
)
def test_entries_match_the_way_locations_are_written(entry, path, module, closed):
    assert (Blocklist([entry]).match(path, module) == entry) is closed


def test_from_env_and_an_empty_list():
    blocklist = Blocklist.from_env({"RUNTIME_AGENT_BLOCKLIST": " payments/charge.py , ,billing "})
    assert blocklist.entries == ("payments/charge.py", "billing")
    assert not Blocklist.from_env({})
    assert Blocklist.from_env({}).match("/a/payments/charge.py") is None


@pytest.mark.parametrize(
    "entry", ["rt_targets/payments/charge.py", "payments/charge.py", "rt_targets.payments"]
)
def test_placement_is_refused_with_the_entry_named(entry):
    from rt_targets.payments import charge  # noqa: F401  (loaded, so the path resolves)

    with Engine(blocklist=[entry]) as eng:
        with pytest.raises(BlockedLocation, match=f"RUNTIME_AGENT_BLOCKLIST: {entry}"):
            eng.add_counter(f"rt_targets/payments/charge.py:{CHARGE['charge_call']}")
        eng.add_counter(at("plain_total"))  # elsewhere is open


def test_a_pending_action_is_refused_when_the_closed_module_imports(tmp_path, monkeypatch):
    (tmp_path / "late_closed.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with Engine(blocklist=["late_closed.py"]) as eng:
        status = eng.add_counter("late_closed.py:2")
        assert status.state == "pending"
        import late_closed  # noqa: F401

        assert eng.status(status.id).state == "error"
        assert "blocklist" in eng.status(status.id).message


def test_get_source_refuses_a_closed_file_and_says_why():
    from rt_targets.payments import charge  # noqa: F401

    blocklist = Blocklist(["payments/charge.py"])
    location = f"rt_targets/payments/charge.py:{CHARGE['charge_call']}"
    with pytest.raises(BlockedLocation, match=r"blocklist .*payments/charge\.py"):
        live_source.describe(location, blocklist=blocklist)
    with pytest.raises(BlockedLocation):
        live_source.describe("rt_targets.payments.charge:charge", blocklist=Blocklist(["payments"]))
    # not loaded, yet refused before looking: the answer does not tell whether it exists
    with pytest.raises(BlockedLocation):
        live_source.describe("payments/never_imported.py:1", blocklist=Blocklist(["payments/"]))
    assert live_source.describe(location)["lines"]  # open without the blocklist


def test_the_channel_answers_a_source_query_for_a_closed_file_with_the_error():
    from rt_targets.payments import charge  # noqa: F401
    from runtime_agent.channel import Channel
    from runtime_agent.config import AgentConfig

    posted = []

    class Upload:
        def request(self, method, path, body, token=None):
            posted.append(body)

    with Engine(blocklist=["payments/charge.py"]) as eng:
        channel = Channel(eng, AgentConfig(hub="http://127.0.0.1:9", token=None, service="t"))
        channel._upload = Upload()
        channel.agent_id = "a1"
        query = {"location": f"rt_targets/payments/charge.py:{CHARGE['charge_call']}"}
        channel._answer({"id": "q1", "kind": "source", "args": query})
    (answer,) = posted
    assert "result" not in answer
    assert "blocklist" in answer["error"] and "payments/charge.py" in answer["error"]


def test_a_closed_callers_frame_shows_only_where_it_is():
    from rt_targets.payments import charge

    with Engine(blocklist=["rt_targets/payments/"]) as eng:
        snap = eng.add_snapshot(f"rt_targets/secrets_app.py:{APP['settle_return']}")
        charge.charge(5)
        (event,) = events_of(eng, "snapshot", snap.id)
    top, caller = event["frames"][0], event["frames"][1]
    assert top["function"] == "settle" and "settled" in top["locals"]
    assert caller == {
        "file": charge.__file__,
        "line": CHARGE["charge_call"],
        "function": "charge",
        "blocked": True,
    }
    assert "CHARGE-LOCAL" not in repr(event)
