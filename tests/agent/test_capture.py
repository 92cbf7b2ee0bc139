"""capture.py: values described without running application code, bounded, redacted.

Every hostile hook below records itself in CALLS; the autouse fixture fails a
test whose capture ran any of them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import json
import pathlib
import sys
import time
import timeit
import uuid
from typing import Any, NamedTuple

import pytest

from runtime_agent.capture import (
    DEPTH_CEILING,
    CaptureBudget,
    CaptureLimits,
    capture_namespace,
    capture_value,
    render,
)
from runtime_agent.redact import REDACTED, Redactor

CALLS: list[str] = []


def record(what: str) -> None:
    CALLS.append(what)


@pytest.fixture(autouse=True)
def nothing_ran():
    CALLS.clear()
    yield
    assert CALLS == [], f"application code ran: {CALLS}"


def capture(value: Any, **kwargs: Any) -> dict[str, Any]:
    """capture_value, checking that no hook ran and that the result is strict JSON."""
    CALLS.clear()
    out = capture_value(value, **kwargs)
    assert CALLS == [], f"application code ran: {CALLS}"
    json.dumps(out, allow_nan=False)  # no default= hook, no NaN
    return out


def size_of(node: Any) -> int:
    return len(json.dumps(node))


def depth_of(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max((depth_of(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return max((depth_of(v) for v in node), default=0)
    return 0


# --------------------------------------------------------------------------
# Hostile objects


class Recording:
    """A non-data descriptor with a side effect."""

    def __get__(self, obj: object, owner: type | None = None) -> int:
        record("descriptor __get__")
        return 1


class Hostile:
    """Every hook an unsafe capture could run records itself, mutates, sleeps or raises."""

    desc = Recording()

    def __init__(self) -> None:
        object.__setattr__(self, "plain", 1)
        object.__setattr__(self, "items", [1, 2])

    def __repr__(self) -> str:
        record("__repr__")
        object.__setattr__(self, "plain", 99)
        time.sleep(1)
        raise RuntimeError("repr")

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        record("__format__")
        return ""

    def __getattr__(self, name: str) -> object:
        record(f"__getattr__ {name}")
        return 0

    def __getattribute__(self, name: str) -> object:
        record(f"__getattribute__ {name}")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        record(f"__setattr__ {name}")

    def __eq__(self, other: object) -> bool:
        record("__eq__")
        object.__getattribute__(self, "items").append("eq")
        return True

    def __hash__(self) -> int:
        record("__hash__")
        object.__getattribute__(self, "items").append("hash")
        return 1

    def __lt__(self, other: object) -> bool:
        record("__lt__")
        return True

    def __len__(self) -> int:
        record("__len__")
        return 0

    def __iter__(self):
        record("__iter__")
        return iter(())

    def __bool__(self) -> bool:
        record("__bool__")
        return False

    def __sizeof__(self) -> int:
        record("__sizeof__")
        return 0

    def __dir__(self):
        record("__dir__")
        return []

    def __reduce__(self):
        record("__reduce__")
        raise RuntimeError

    @property
    def prop(self) -> int:
        record("property")
        object.__getattribute__(self, "items").clear()
        return 5

    @property  # type: ignore[misc]
    def __class__(self):
        record("__class__")
        return int


def state(obj: Hostile) -> dict[str, Any]:
    namespace = object.__getattribute__(obj, "__dict__")
    return {"plain": namespace["plain"], "items": list(namespace["items"])}


def test_hostile_object_is_walked_never_run():
    obj = Hostile()
    before = state(obj)
    started = time.perf_counter()
    out = capture(obj)
    assert time.perf_counter() - started < 0.5  # the sleeping __repr__ never ran
    assert out == {
        "type": f"{__name__}.Hostile",
        "fields": {
            "plain": {"type": "int", "value": 1},
            "items": {
                "type": "list",
                "size": 2,
                "items": [{"type": "int", "value": 1}, {"type": "int", "value": 2}],
            },
        },
    }
    assert state(obj) == before


def test_hostile_objects_inside_containers_keys_and_sets():
    key, member, item = Hostile(), Hostile(), Hostile()
    mapping = {key: item, "x": [item]}
    members = {member}
    CALLS.clear()  # building them hashed the keys; capturing them must not
    before = [state(o) for o in (key, member, item)]
    out = capture({"mapping": mapping, "members": members})
    inner = out["fields"]["mapping"]
    assert inner["size"] == 2
    entries = inner["entries"]  # a key that is not a str: [key, value] pairs
    assert entries[0][0]["type"].endswith("Hostile")
    assert entries[0][1]["fields"]["plain"] == {"type": "int", "value": 1}
    assert entries[1][0] == {"type": "str", "value": "x"}
    assert out["fields"]["members"]["items"][0]["type"].endswith("Hostile")
    assert [state(o) for o in (key, member, item)] == before


def test_render_of_hostile_object_runs_nothing():
    obj = Hostile()
    CALLS.clear()
    text = render(obj)
    assert CALLS == []
    assert text == "Hostile(plain=1, items=[1, 2])"


class Meta(type):
    """A metaclass whose every hook records itself."""

    def __hash__(cls) -> int:
        record("meta __hash__")
        return 1

    def __eq__(cls, other: object) -> bool:
        record("meta __eq__")
        return False

    def __getattribute__(cls, name: str) -> Any:
        record(f"meta __getattribute__ {name}")
        return type.__getattribute__(cls, name)

    def __instancecheck__(cls, obj: object) -> bool:
        record("meta __instancecheck__")
        return True

    def __subclasscheck__(cls, sub: type) -> bool:
        record("meta __subclasscheck__")
        return True

    def __repr__(cls) -> str:
        record("meta __repr__")
        return "x"

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        record("meta __name__")
        return "x"

    @property
    def __module__(cls) -> str:  # type: ignore[override]
        record("meta __module__")
        return "x"

    @property
    def __mro__(cls) -> tuple[type, ...]:  # type: ignore[override]
        record("meta __mro__")
        return (object,)


class Managed(metaclass=Meta):
    def __init__(self) -> None:
        self.value = 7


class ManagedList(list, metaclass=Meta):
    pass


def test_classes_with_a_hostile_metaclass_are_never_hashed_compared_or_asked():
    obj, seq = Managed(), ManagedList([1, 2])
    out = capture({"obj": obj, "seq": seq, "cls": Managed, "pair": (obj, obj)})
    fields = out["fields"]
    assert fields["obj"] == {
        "type": f"{__name__}.Managed",
        "fields": {"value": {"type": "int", "value": 7}},
    }
    assert fields["seq"]["type"] == f"{__name__}.ManagedList"
    assert [i["value"] for i in fields["seq"]["items"]] == [1, 2]
    assert fields["cls"] == {"type": "class", "value": f"{__name__}.Managed"}
    CALLS.clear()
    assert render(obj) == "Managed(value=7)"
    assert CALLS == []


class DictProperty:
    """A class whose __dict__ is a property: it must never run."""

    @property  # type: ignore[misc]
    def __dict__(self):  # type: ignore[override]
        record("__dict__ property")
        raise RuntimeError("no")


class Plain:
    def __init__(self) -> None:
        self.kept = 1


class ShadowedDict(Plain):
    @property  # type: ignore[misc]
    def __dict__(self):  # type: ignore[override]
        record("__dict__ property")
        return {"fake": 1}


class RecordingDict(dict):
    def items(self):
        record("dict items")
        return iter(())

    def __iter__(self):
        record("dict __iter__")
        return iter(())

    def __getitem__(self, key):
        record("dict __getitem__")
        raise KeyError(key)

    def __len__(self) -> int:
        record("dict __len__")
        return 0


def test_a_dict_property_is_never_called():
    obj = DictProperty()
    object.__setattr__(obj, "hidden", 1)
    out = capture(obj)
    # No C __dict__ slot is reachable, so nothing can be read without running code.
    assert out["type"] == f"{__name__}.DictProperty"
    assert "fields" not in out
    assert out["id"].startswith("0x")


def test_a_shadowed_dict_property_is_skipped_for_the_real_storage():
    out = capture(ShadowedDict())
    assert out["fields"] == {"kept": {"type": "int", "value": 1}}


def test_an_instance_dict_of_a_dict_subclass_is_read_through_dict_methods():
    obj = Plain()
    obj.__dict__ = RecordingDict(kept=2, more=3)
    CALLS.clear()
    out = capture(obj)
    assert out["fields"] == {
        "kept": {"type": "int", "value": 2},
        "more": {"type": "int", "value": 3},
    }


class SneakyList(list):
    def __iter__(self):
        record("list __iter__")
        return iter([99])

    def __getitem__(self, index):
        record("list __getitem__")
        return 99

    def __len__(self) -> int:
        record("list __len__")
        return 1


class SneakySet(set):
    def __iter__(self):
        record("set __iter__")
        return iter(())


class SneakyTuple(tuple):
    def __iter__(self):
        record("tuple __iter__")
        return iter(())

    def __len__(self) -> int:
        record("tuple __len__")
        return 0


class SneakyDeque(collections.deque):
    def __iter__(self):
        record("deque __iter__")
        return iter(())


def test_container_subclasses_show_their_real_storage():
    lst = SneakyList([1, 2, 3])
    lst.note = "attr"
    out = capture(lst)
    assert out["type"] == f"{__name__}.SneakyList"
    assert out["size"] == 3
    assert [i["value"] for i in out["items"]] == [1, 2, 3]
    assert out["attributes"] == {"note": {"type": "str", "value": "attr"}}
    d = RecordingDict(a=1)
    CALLS.clear()
    out = capture(d)
    assert out["size"] == 1
    assert out["fields"] == {"a": {"type": "int", "value": 1}}
    assert capture(SneakySet({5}))["items"] == [{"type": "int", "value": 5}]
    assert capture(SneakyTuple((1, 2)))["size"] == 2
    assert capture(SneakyDeque([4]))["items"] == [{"type": "int", "value": 4}]


class HostileStr(str):
    def __str__(self) -> str:
        record("str __str__")
        return "fake"

    def __len__(self) -> int:
        record("str __len__")
        return 0

    def __getitem__(self, index):
        record("str __getitem__")
        return "fake"

    def __hash__(self) -> int:
        record("str __hash__")
        return 1

    def __eq__(self, other: object) -> bool:
        record("str __eq__")
        return False

    def lower(self) -> str:  # type: ignore[override]
        record("str lower")
        return "fake"

    def translate(self, table):  # type: ignore[override]
        record("str translate")
        return "fake"


class HostileInt(int):
    def __int__(self) -> int:
        record("int __int__")
        return 0

    def __index__(self) -> int:
        record("int __index__")
        return 0

    def __repr__(self) -> str:
        record("int __repr__")
        return "0"

    __str__ = __repr__


class HostileFloat(float):
    def __float__(self) -> float:
        record("float __float__")
        return 0.0

    def __repr__(self) -> str:
        record("float __repr__")
        return "0"


class HostileBytes(bytes):
    def __bytes__(self) -> bytes:
        record("bytes __bytes__")
        return b""

    def __getitem__(self, index):
        record("bytes __getitem__")
        return b""

    def __len__(self) -> int:
        record("bytes __len__")
        return 0


def test_scalar_subclasses_show_their_builtin_value():
    word = HostileStr("secret-free text")
    number = HostileInt(42)
    ratio = HostileFloat(1.5)
    raw = HostileBytes(b"abc")
    CALLS.clear()
    assert capture(word) == {"type": f"{__name__}.HostileStr", "value": "secret-free text"}
    assert capture(number) == {"type": f"{__name__}.HostileInt", "value": 42}
    assert capture(ratio) == {"type": f"{__name__}.HostileFloat", "value": 1.5}
    assert capture(raw) == {"type": f"{__name__}.HostileBytes", "value": "b'abc'"}
    # As a key and as a variable name, a str subclass is read as its plain text.
    out = capture({word: 1})
    assert out["fields"] == {"secret-free text": {"type": "int", "value": 1}}
    frame = {HostileStr("password"): "hunter2", HostileStr("x"): 1}
    CALLS.clear()  # building the dict hashed the names; capturing must not
    names = capture_namespace(frame)
    assert CALLS == []
    assert names == {
        "password": {"type": "str", "redacted": True},
        "x": {"type": "int", "value": 1},
    }


class SlotBase:
    __slots__ = ("guarded", "unset")

    def __init__(self) -> None:
        # Through the slot itself: a subclass's read-only property shadows the name.
        SlotBase.__dict__["guarded"].__set__(self, "storage")


class SlotShadow(SlotBase):
    __slots__ = ()

    @property  # type: ignore[misc]
    def guarded(self) -> str:  # type: ignore[override]
        record("slot property")
        return "fake"


def test_slots_are_read_through_member_descriptors_never_properties():
    out = capture(SlotShadow())
    assert out["fields"] == {"guarded": {"type": "str", "value": "storage"}}  # unset is left out


def test_hostile_exception_and_tzinfo_and_stdlib_subclasses():
    class Boom(Exception):
        def __str__(self) -> str:
            record("exception __str__")
            return ""

        def __repr__(self) -> str:
            record("exception __repr__")
            return ""

        @property
        def args_view(self) -> tuple:
            record("exception property")
            return ()

    class Zone(datetime.tzinfo):
        def utcoffset(self, dt):
            record("utcoffset")
            return datetime.timedelta(hours=1)

        def tzname(self, dt):
            record("tzname")
            return "Z"

        def dst(self, dt):
            record("dst")
            return datetime.timedelta(0)

    class When(datetime.datetime):
        def isoformat(self, *args: Any, **kwargs: Any) -> str:
            record("isoformat")
            return "fake"

        def __str__(self) -> str:
            record("datetime __str__")
            return "fake"

        @property
        def year(self) -> int:  # type: ignore[override]
            record("year property")
            return 1

    class Money(decimal.Decimal):
        def __str__(self) -> str:
            record("decimal __str__")
            return "fake"

        __repr__ = __str__

    class Ident(uuid.UUID):
        def __str__(self) -> str:
            record("uuid __str__")
            return "fake"

        @property
        def hex(self) -> str:  # type: ignore[override]
            record("uuid hex")
            return "fake"

    class Ratio(fractions.Fraction):
        def __str__(self) -> str:
            record("fraction __str__")
            return "fake"

    boom = Boom(Hostile())
    zone = Zone()
    CALLS.clear()
    out = capture(boom)
    assert out["type"].endswith("Boom")
    assert out["args"]["items"][0]["type"].endswith("Hostile")
    zone_name = f"{__name__}.{Zone.__qualname__}"
    assert capture(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=zone))["value"] == (
        f"2026-01-02 03:04:05 ({zone_name})"
    )
    assert capture(datetime.time(3, 4, tzinfo=zone))["value"] == f"03:04:00 ({zone_name})"
    assert capture(When(2026, 1, 2, 3, 4, 5))["value"] == "2026-01-02 03:04:05"
    assert capture(When(2026, 1, 2, tzinfo=datetime.timezone.utc))["value"] == (
        "2026-01-02 00:00:00+00:00"
    )
    assert capture(Money("1.10"))["value"] == "1.10"
    ident = Ident(int=7)
    CALLS.clear()
    assert capture(ident)["value"] == "00000000-0000-0000-0000-000000000007"
    assert capture(Ratio(3, 4))["value"] == "3/4"
    CALLS.clear()
    assert (
        render(datetime.datetime(2026, 1, 2, tzinfo=zone)) == f"2026-01-02 00:00:00 ({zone_name})"
    )
    assert CALLS == []


def test_pydantic_models_show_field_storage_and_extras():
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        name: str
        password: str
        _private: str = pydantic.PrivateAttr("hidden")

        @property
        def shout(self) -> str:
            record("pydantic property")
            return self.name.upper()

        @pydantic.computed_field  # type: ignore[prop-decorator]
        @property
        def computed(self) -> str:
            record("computed field")
            return "x"

        def __repr__(self) -> str:
            record("pydantic __repr__")
            return ""

    user = User(name="ada", password="pw", note="extra")
    CALLS.clear()
    out = capture(user, redactor=Redactor())
    assert out["type"].endswith("User")
    assert out["fields"] == {
        "name": {"type": "str", "value": "ada"},
        "password": {"type": "str", "redacted": True},
        "note": {"type": "str", "value": "extra"},
    }


def test_huge_values_are_bounded_and_fast():
    huge_list = list(range(1_000_000))
    huge_dict = {i: i for i in range(200_000)}
    huge_str = "x" * 10_000_000
    huge_int = 10**5000
    huge_bytes = bytes(10_000_000)
    started = time.perf_counter()
    outs = [capture(v) for v in (huge_list, huge_dict, huge_str, huge_int, huge_bytes)]
    assert time.perf_counter() - started < 0.5
    assert outs[0]["size"] == 1_000_000 and len(outs[0]["items"]) == 100
    assert outs[1]["size"] == 200_000 and len(outs[1]["entries"]) == 100
    assert outs[2]["size"] == 10_000_000 and len(outs[2]["value"]) == 256
    assert outs[3]["value"] == f"<int of {huge_int.bit_length()} bits>"
    assert outs[4]["size"] == 10_000_000 and outs[4]["truncated"]
    assert all(size_of(o) < 20_000 for o in outs)


def test_a_value_that_cannot_be_read_is_reported_alone():
    released = memoryview(b"abc")
    released.release()
    out = capture([range(10**5000), released, 1])
    assert out["items"][2] == {"type": "int", "value": 1}
    assert out["items"][1] == {"type": "memoryview", "notCaptured": "capture failed: ValueError"}
    first = out["items"][0]
    assert first["type"] == "range"
    assert first.get("truncated") or first["notCaptured"] == "capture failed: ValueError"
    assert size_of(out) < 1000


def test_ten_thousand_attributes():
    class Wide:
        pass

    wide = Wide()
    for i in range(10_000):
        setattr(wide, f"a{i}", i)
    started = time.perf_counter()
    out = capture(wide)
    assert time.perf_counter() - started < 0.2  # ~50 us here: 20 fields read, not 10,000
    assert len(out["fields"]) == 20
    assert list(out["fields"])[:3] == ["a0", "a1", "a2"]
    assert out["size"] == 10_000 and out["truncated"] is True


def test_deep_structures_never_raise_recursion_error():
    deep: list = []
    node = deep
    for _ in range(100_000):
        child: list = []
        node.append(child)
        node = child

    class Link:
        def __init__(self, nxt: Link | None) -> None:
            self.next = nxt

    chain = None
    for _ in range(100_000):
        chain = Link(chain)
    for limits in (CaptureLimits(), CaptureLimits(max_depth=1_000_000)):
        for value in (deep, chain):
            out = capture(value, limits=limits)
            assert depth_of(out) <= 2 * (min(limits.max_depth, DEPTH_CEILING) + 2)
            assert "DEPTH_LIMIT" not in json.dumps(out)
            assert "depth limit" in json.dumps(out)


def test_capture_near_the_recursion_limit_returns_instead_of_raising():
    nested = [[[[["bottom"]]]]]
    results = []

    def descend(n: int) -> None:
        if n <= 0:
            results.append(capture_value(nested))
            results.append(capture_namespace({"v": nested}))
            return
        descend(n - 1)

    def room(n: int = 0) -> int:
        """How many more frames this test can push before RecursionError."""
        try:
            return room(n + 1)
        except RecursionError:
            return n

    headroom = room()
    for spare in (60, 12, 8, 4, 3):
        descend(headroom - spare)  # must not raise, however little room is left
    assert len(results) == 10
    for result in results:
        json.dumps(result, allow_nan=False)
    assert "RecursionError" not in json.dumps(results[:2])  # room enough: the whole value
    assert results[0]["items"][0]["items"][0]["items"][0] == {
        "type": "list",
        "size": 1,
        "notCaptured": "depth limit",
    }
    assert "capture failed: RecursionError" in json.dumps(results[2:])


# --------------------------------------------------------------------------
# Limits and markers


def test_string_truncation_marker_keeps_the_original_size():
    assert capture("x" * 1000) == {
        "type": "str",
        "value": "x" * 256,
        "truncated": True,
        "size": 1000,
    }
    assert capture("short") == {"type": "str", "value": "short"}


def test_collection_limits_and_markers():
    out = capture(list(range(5000)))
    assert out["size"] == 5000 and len(out["items"]) == 100 and out["truncated"] is True
    assert out["items"][99] == {"type": "int", "value": 99}
    out = capture({f"k{i}": i for i in range(500)})
    assert out["size"] == 500 and len(out["fields"]) == 100 and out["truncated"] is True
    out = capture(set(range(300)))
    assert out["size"] == 300 and len(out["items"]) == 100 and out["truncated"] is True
    assert "truncated" not in capture([1, 2, 3])


def test_depth_limit_marker_keeps_type_and_size():
    level = capture([[[[["bottom"]]]]])
    for _ in range(3):
        level = level["items"][0]
    assert level == {"type": "list", "size": 1, "notCaptured": "depth limit"}

    @dataclasses.dataclass
    class Box:
        inner: Any

    level = capture(Box(Box(Box(Box(1)))))
    for _ in range(3):
        level = level["fields"]["inner"]
    assert level == {"type": f"{__name__}.{Box.__qualname__}", "notCaptured": "depth limit"}


def test_custom_limits():
    limits = CaptureLimits(max_depth=1, max_fields=2, max_items=2, max_string=4)

    class Three:
        def __init__(self) -> None:
            self.a, self.b, self.c = 1, 2, 3

    out = capture({"s": "abcdefgh", "l": [1, 2, 3], "o": Three()}, limits=limits, redactor=None)
    assert out["size"] == 3 and len(out["fields"]) == 2 and out["truncated"] is True
    assert out["fields"]["s"] == {"type": "str", "value": "abcd", "truncated": True, "size": 8}
    assert out["fields"]["l"] == {"type": "list", "size": 3, "notCaptured": "depth limit"}
    out = capture(Three(), limits=limits)
    assert list(out["fields"]) == ["a", "b"] and out["size"] == 3


def test_budget_is_shared_by_a_whole_snapshot():
    budget = CaptureBudget(65536)
    names = {f"v{i}": "y" * 200 for i in range(1000)}
    first = capture_namespace(names, budget=budget)
    assert budget.exhausted and budget.spent > 65536
    captured = {k: v for k, v in first.items() if "value" in v}
    markers = [v for v in first.values() if v.get("notCaptured") == "snapshot size limit"]
    assert captured and markers and len(captured) + len(markers) == 1000
    # What was captured fits the budget; past it, each name costs one small marker.
    assert 50_000 < size_of(captured) <= 65536 * 1.1  # the budget is approximate
    assert markers[0] == {"type": "str", "size": 200, "notCaptured": "snapshot size limit"}
    assert all(size_of(m) < 80 for m in markers)
    # The same budget: a later frame of the snapshot gets only markers.
    later = capture_namespace({"n": 1, "l": [1]}, budget=budget)
    assert later == {
        "n": {"type": "int", "notCaptured": "snapshot size limit"},
        "l": {"type": "list", "notCaptured": "snapshot size limit"},
    }
    assert capture_value(5, budget=budget) == {"type": "int", "notCaptured": "snapshot size limit"}


def test_budget_stops_a_container_early():
    out = capture_value(["z" * 200] * 100, budget=CaptureBudget(2000))
    assert out["size"] == 100
    assert out["truncated"] is True
    assert len(out["items"]) < 15
    assert size_of(out) < 4000


def test_many_large_values_stay_near_the_budget():
    big = {f"k{i}": ["w" * 256] * 100 for i in range(50)}
    out = capture_namespace({"a": big, "b": big, "c": list(range(10_000))})
    assert size_of(out) < 65536 * 1.3


# --------------------------------------------------------------------------
# Cycles


def test_a_value_inside_itself_is_a_reference_to_its_id():
    cycle: list = [1]
    cycle.append(cycle)
    out = capture(cycle)
    assert out == {
        "type": "list",
        "id": "#1",
        "size": 2,
        "items": [{"type": "int", "value": 1}, {"type": "list", "ref": "#1"}],
    }
    assert list(out) == ["type", "id", "size", "items"]  # the id right after the type
    node: dict = {}
    node["self"] = node
    node["again"] = node
    out = capture(node)
    assert out["id"] == "#1"
    assert out["fields"]["self"] == {"type": "dict", "ref": "#1"}
    assert out["fields"]["again"] == {"type": "dict", "ref": "#1"}


def test_object_cycles_and_several_cycles_in_one_snapshot():
    class Peer:
        other: Peer

    a, b = Peer(), Peer()
    a.other, b.other = b, a
    loop: list = []
    loop.append(loop)
    out = capture_namespace({"a": a, "loop": loop})
    assert out["a"]["id"] == "#1"
    assert out["a"]["fields"]["other"]["fields"]["other"] == {
        "type": f"{__name__}.{Peer.__qualname__}",
        "ref": "#1",
    }
    assert out["loop"]["id"] == "#2"
    assert out["loop"]["items"] == [{"type": "list", "ref": "#2"}]


def test_shared_values_that_are_not_cycles_are_captured_twice():
    shared = [1, 2]
    out = capture([shared, shared])
    assert out["items"][0] == out["items"][1]
    assert "ref" not in json.dumps(out) and "id" not in out


# --------------------------------------------------------------------------
# Shapes


@dataclasses.dataclass
class Trade:
    symbol: str
    quantity: int
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Frozen:
    b: int
    a: int


class Point(NamedTuple):
    x: int
    y: int


Pair = collections.namedtuple("Pair", "left right")


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Level(enum.IntEnum):
    LOW = 1


class Perm(enum.Flag):
    R = 1
    W = 2


def test_dataclass_shape_in_field_order():
    out = capture(Trade("ACME", 3, ["x"]))
    assert out == {
        "type": f"{__name__}.Trade",
        "fields": {
            "symbol": {"type": "str", "value": "ACME"},
            "quantity": {"type": "int", "value": 3},
            "tags": {"type": "list", "size": 1, "items": [{"type": "str", "value": "x"}]},
        },
    }
    assert list(capture(Frozen(2, 1))["fields"]) == ["b", "a"]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="slots=True is 3.10+")
def test_slotted_dataclass_keeps_declared_order():
    @dataclasses.dataclass(slots=True)
    class Slotted:
        zeta: int
        alpha: int
        __private: int = 3

    out = capture(Slotted(1, 2))
    assert list(out["fields"]) == ["zeta", "alpha", "_Slotted__private"]


def test_named_tuples_show_field_names():
    assert capture(Point(1, 2)) == {
        "type": f"{__name__}.Point",
        "fields": {"x": {"type": "int", "value": 1}, "y": {"type": "int", "value": 2}},
    }
    assert list(capture(Pair("l", "r"))["fields"]) == ["left", "right"]


def test_enum_shapes():
    assert capture(Side.BUY) == {
        "type": f"{__name__}.Side",
        "value": "Side.BUY",
        "enumValue": {"type": "str", "value": "buy"},
    }
    assert capture(Level.LOW)["value"] == "Level.LOW"
    assert capture(Level.LOW)["enumValue"] == {"type": "int", "value": 1}
    combined = capture(Perm.R | Perm.W)
    assert combined["enumValue"] == {"type": "int", "value": 3}
    assert combined["value"].startswith("Perm.") or combined["value"] == "Perm(?)"


def fail(code: int) -> None:
    raise ValueError("bad", code)


def test_exception_shape_with_frames_cause_and_attributes():
    try:
        try:
            fail(3)
        except ValueError as exc:
            error = KeyError("missing")
            error.code = 42  # type: ignore[attr-defined]
            raise error from exc
    except KeyError as caught:
        out = capture(caught)
    assert out["type"] == "KeyError"
    assert out["args"] == {
        "type": "tuple",
        "size": 1,
        "items": [{"type": "str", "value": "missing"}],
    }
    assert out["attributes"] == {"code": {"type": "int", "value": 42}}
    assert out["frames"][-1].startswith(__file__ + ":")
    cause = out["cause"]
    assert cause["type"] == "ValueError"
    assert [a["value"] for a in cause["args"]["items"]] == ["bad", 3]
    assert cause["frames"][-1] == f"{__file__}:{fail.__code__.co_firstlineno + 1}:fail"
    implicit = None
    try:
        try:
            fail(1)
        except ValueError:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        implicit = capture(exc)
    assert "cause" not in implicit and "context" not in implicit  # suppressed by "from None"
    try:
        try:
            fail(1)
        except ValueError:
            raise RuntimeError("while handling")
    except RuntimeError as exc:
        implicit = capture(exc)
    assert implicit["context"]["type"] == "ValueError"


def test_scalar_and_stdlib_value_shapes():
    ident = uuid.UUID(int=5)
    assert capture(None) == {"type": "NoneType", "value": None}
    assert capture(True) == {"type": "bool", "value": True}
    assert capture(1.5) == {"type": "float", "value": 1.5}
    assert capture(float("nan")) == {"type": "float", "value": "nan"}
    assert capture(float("-inf")) == {"type": "float", "value": "-inf"}
    assert capture(10**400) == {"type": "int", "value": "<int of 1329 bits>"}
    assert capture(decimal.Decimal("1.10")) == {"type": "Decimal", "value": "1.10"}
    assert capture(fractions.Fraction(1, 3)) == {"type": "Fraction", "value": "1/3"}
    assert capture(ident) == {"type": "UUID", "value": str(ident)}
    assert capture(1 + 2j) == {"type": "complex", "value": "(1+2j)"}
    assert capture(range(3)) == {"type": "range", "value": "range(0, 3)"}
    assert capture(datetime.datetime(2026, 1, 2, 3, 4, 5)) == {
        "type": "datetime",
        "value": "2026-01-02 03:04:05",
    }
    assert capture(datetime.date(2026, 1, 2))["value"] == "2026-01-02"
    assert capture(datetime.time(3, 4))["value"] == "03:04:00"
    assert capture(datetime.timedelta(seconds=90))["value"] == "0:01:30"
    aware = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert capture(aware)["value"] == "2026-01-02 00:00:00+02:00"
    assert capture(datetime.timezone.utc) == {"type": "timezone", "value": "UTC"}
    assert capture(pathlib.PurePosixPath("/srv/app")) == {
        "type": "PurePosixPath",
        "value": "/srv/app",
    }
    assert capture(b"\x00ab") == {"type": "bytes", "value": "b'\\x00ab'"}
    assert capture(bytearray(b"xy")) == {"type": "bytearray", "value": "b'xy'"}
    assert capture(memoryview(b"abc"))["value"] == "b'abc'"
    assert capture(bytes(300)) == {
        "type": "bytes",
        "value": repr(bytes(300))[:256],
        "truncated": True,
        "size": 300,
    }


def test_zoneinfo_datetimes_read_like_str():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        zone = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    when = datetime.datetime(2026, 7, 1, 12, tzinfo=zone)
    assert capture(when)["value"] == str(when) == "2026-07-01 12:00:00+02:00"


def module_function() -> None:
    pass


class Owner:
    def method(self) -> None:
        pass


def test_callables_classes_and_modules_by_name():
    assert capture(module_function) == {
        "type": "function",
        "value": f"{__name__}.module_function",
    }
    assert capture(Owner().method) == {"type": "method", "value": f"{__name__}.Owner.method"}
    assert capture(len) == {"type": "builtin_function_or_method", "value": "len"}
    assert capture(Owner) == {"type": "class", "value": f"{__name__}.Owner"}
    assert capture(json) == {"type": "module", "value": "json"}
    partial = capture(functools.partial(max, 1))
    assert partial["type"] == "functools.partial"
    assert partial["fields"]["func"] == {"type": "builtin_function_or_method", "value": "max"}


def test_objects_without_readable_state_show_type_and_id():
    thing = object()
    assert capture(thing) == {"type": "object", "id": hex(id(thing))}


def test_dict_shapes_for_string_and_other_keys():
    assert capture({"a": 1}) == {
        "type": "dict",
        "size": 1,
        "fields": {"a": {"type": "int", "value": 1}},
    }
    assert capture({1: "x"}) == {
        "type": "dict",
        "size": 1,
        "entries": [[{"type": "int", "value": 1}, {"type": "str", "value": "x"}]],
    }
    counted = capture(collections.defaultdict(list, a=[1]))
    assert counted["type"] == "collections.defaultdict"
    assert counted["attributes"]["default_factory"] == {"type": "class", "value": "list"}
    long_key = capture({"k" * 1000: 1})
    (key,) = long_key["fields"]
    assert key == "k" * 256 + "..."


def test_everything_is_strict_json():
    values = [
        {"nan": float("nan"), "inf": float("inf")},
        {(1, 2): {frozenset([1]): None}},
        {b"bytes-key": 1, None: 2, 1.5: 3},
        [Side.BUY, Level.LOW, decimal.Decimal("NaN"), uuid.uuid4(), datetime.datetime.now()],
        Trade("X", 1),
        ValueError(Hostile()),
    ]
    for value in values:
        capture(value)


# --------------------------------------------------------------------------
# Redaction inside captures


def test_sensitive_variable_names_keep_only_their_type():
    out = capture_namespace(
        {
            "API_KEY": "k-1",
            "x-api-key": "k-2",
            "Authorization": "Bearer abcdefghijkl",
            "db_password": 12345,
            "session": Hostile(),
            "user": "bob",
        },
        redactor=Redactor(),
    )
    assert out["API_KEY"] == {"type": "str", "redacted": True}
    assert out["x-api-key"] == {"type": "str", "redacted": True}
    assert out["Authorization"] == {"type": "str", "redacted": True}
    assert out["db_password"] == {"type": "int", "redacted": True}
    assert out["session"] == {"type": f"{__name__}.Hostile", "redacted": True}
    assert out["user"] == {"type": "str", "value": "bob"}


def test_nested_keys_attributes_slots_and_fields_are_redacted():
    class Account:
        __slots__ = ("owner", "token")

        def __init__(self) -> None:
            self.owner = "ada"
            self.token = "t-123"

    class Creds(NamedTuple):
        user: str
        password: str

    class Holder:
        def __init__(self) -> None:
            self.secret = "s"
            self.name = "n"

    value = {
        "user": {"name": "bob", "Password": "hunter2", "card": {"cvv": 123}},
        "account": Account(),
        "creds": Creds("u", "p"),
        "holder": Holder(),
        "pairs": {b"api_key": "x", 1: "y"},
    }
    out = capture(value, redactor=Redactor())
    user = out["fields"]["user"]["fields"]
    assert user["name"] == {"type": "str", "value": "bob"}
    assert user["Password"] == {"type": "str", "redacted": True}
    assert user["card"]["fields"]["cvv"] == {"type": "int", "redacted": True}
    account = out["fields"]["account"]["fields"]
    assert account == {
        "owner": {"type": "str", "value": "ada"},
        "token": {"type": "str", "redacted": True},
    }
    assert out["fields"]["creds"]["fields"]["password"] == {"type": "str", "redacted": True}
    assert out["fields"]["holder"]["fields"]["secret"] == {"type": "str", "redacted": True}
    entries = out["fields"]["pairs"]["entries"]
    assert entries[0][1] == {"type": "str", "redacted": True}
    assert entries[1][1] == {"type": "str", "value": "y"}


def test_string_values_and_keys_are_masked():
    card = "4111 1111 1111 1111"
    out = capture(
        {
            "note": f"paid with {card}",
            card: "card as a key",
            "header": "Bearer abcdefghijklmnop",
            "digits": 4111111111111111,
            "order_id": 1234567890123456,
        }
    )
    fields = out["fields"]
    assert fields["note"] == {"type": "str", "value": f"paid with {REDACTED}"}
    assert REDACTED in fields
    assert card not in json.dumps(out)
    assert fields["header"]["value"] == REDACTED
    assert fields["digits"] == {"type": "int", "redacted": True}  # a Luhn-valid card number
    assert fields["order_id"] == {"type": "int", "value": 1234567890123456}


def test_a_card_straddling_the_string_cut_is_still_masked():
    text = "x" * 249 + " 4111111111111111 " + "y" * 100
    out = capture(text)
    assert out["truncated"] is True and out["size"] == len(text)
    assert "4111" not in out["value"]
    assert out["value"] == "x" * 249 + " <redac"


def test_owner_names_and_patterns_apply_to_captures():
    redactor = Redactor(["tenant"], [r"ACCT-\d+"])
    out = capture_namespace({"Tenant": "acme", "ref": "ACCT-42", "k": "ok"}, redactor=redactor)
    assert out == {
        "Tenant": {"type": "str", "redacted": True},
        "ref": {"type": "str", "value": REDACTED},
        "k": {"type": "str", "value": "ok"},
    }


# --------------------------------------------------------------------------
# render


def test_render_scalars_like_str():
    ident = uuid.UUID(int=9)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert render("abc") == "abc"
    assert render(12) == "12"
    assert render(1.5) == "1.5"
    assert render(True) == "True"
    assert render(None) == "None"
    assert render(decimal.Decimal("1.10")) == "1.10"
    assert render(ident) == str(ident)
    assert render(when) == str(when)
    assert render(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert render(10**400) == "<int of 1329 bits>"


def test_render_containers_and_objects_python_like():
    assert render([1, "a"]) == "[1, 'a']"
    assert render((1,)) == "(1,)"
    assert render({"a": 1}) == "{'a': 1}"
    assert render({1: "x"}) == "{1: 'x'}"
    assert render({3}) == "{3}"
    assert render(Trade("ACME", 3)) == "Trade(symbol='ACME', quantity=3, tags=[])"
    assert render(Point(1, 2)) == "Point(x=1, y=2)"
    assert render(Side.SELL) == "Side.SELL"
    assert render(ValueError("bad", 3)) == "ValueError('bad', 3)"
    cycle: list = [1]
    cycle.append(cycle)
    assert render(cycle) == "[1, [...]]"
    assert render(list(range(50))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]"


def test_render_redacts_and_masks():
    @dataclasses.dataclass
    class Login:
        user: str
        password: str

    assert render(Login("bob", "hunter2")) == "Login(user='bob', password=<redacted>)"
    assert render("card 4111-1111-1111-1111") == f"card {REDACTED}"
    assert render(4111111111111111) == REDACTED
    # mask=False leaves masking to the caller (a template masks the whole line).
    assert render("card 4111-1111-1111-1111", mask=False) == "card 4111-1111-1111-1111"


def test_render_truncates_with_an_ellipsis_and_masks_across_the_cut():
    text = render("z" * 1000)
    assert len(text) == 256 and text.endswith("...")
    assert render("z" * 1000, max_length=10) == "zzzzzzz..."
    straddling = "a" * 240 + " 4111 1111 1111 1111 tail"
    for mask in (True, False):
        cut = render(straddling, mask=mask)
        assert len(cut) <= 256 and "4111 1111" not in cut


def test_render_of_an_int_or_str_is_a_type_check_and_str():
    per_call = min(timeit.repeat(lambda: render(12345), number=2000, repeat=3)) / 2000
    assert per_call < 20e-6  # ~0.3 us here; a generous bound against a slow path
    per_call = min(timeit.repeat(lambda: render("hello"), number=2000, repeat=3)) / 2000
    assert per_call < 20e-6


def test_a_ten_local_snapshot_is_fast():
    class Order:
        def __init__(self) -> None:
            self.id, self.user, self.total, self.paid, self.note = 7, "bob", 12.5, True, None

    names = {
        "i": 1,
        "j": 22,
        "s": "hello",
        "t": "world",
        "f": 1.5,
        "b": False,
        "n": None,
        "lst": [1, 2, 3],
        "d": {"a": 1, "b": "x"},
        "order": Order(),
    }
    redactor = Redactor()
    snapshot = lambda: capture_namespace(names, redactor=redactor, budget=CaptureBudget())
    per_call = min(timeit.repeat(snapshot, number=200, repeat=3)) / 200
    assert per_call < 1e-3  # ~15 us on 3.12 here; the bound only catches a pathological path
    assert snapshot()["order"]["fields"]["user"] == {"type": "str", "value": "bob"}
