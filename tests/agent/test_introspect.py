"""The contract of ``introspect``, the agent's one object reader: every read
goes through a C slot of a builtin type, so no hook of the object read, its
class or its metaclass runs. Every hostile object here records its hooks in
``CALLS``, which must stay empty."""

from __future__ import annotations

import collections
import importlib.util
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime_agent import introspect
from runtime_agent.introspect import MISSING, UNREADABLE

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def nothing_ran() -> Iterator[None]:
    CALLS.clear()
    yield
    assert CALLS == [], f"application code ran: {CALLS}"


class Meta(type):
    """A metaclass with every hook a careless reader would trigger."""

    def __getattribute__(cls, name: str) -> Any:
        CALLS.append(f"Meta.__getattribute__ {name}")
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        CALLS.append(f"Meta.__getattr__ {name}")
        raise AttributeError(name)

    def __eq__(cls, other: object) -> bool:
        CALLS.append("Meta.__eq__")
        return True

    def __hash__(cls) -> int:
        CALLS.append("Meta.__hash__")
        return 1

    def __instancecheck__(cls, obj: object) -> bool:
        CALLS.append("Meta.__instancecheck__")
        return True

    def __subclasscheck__(cls, sub: type) -> bool:
        CALLS.append("Meta.__subclasscheck__")
        return True

    def __len__(cls) -> int:
        CALLS.append("Meta.__len__")
        return 0

    def __iter__(cls) -> Iterator[Any]:
        CALLS.append("Meta.__iter__")
        return iter(())

    def __repr__(cls) -> str:
        CALLS.append("Meta.__repr__")
        return "M"


class Recorded:
    """A descriptor whose every use records."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        CALLS.append("Recorded.__get__")
        return 1

    def __set__(self, obj: object, value: object) -> None:
        CALLS.append("Recorded.__set__")


class Base(metaclass=Meta):
    prop = Recorded()

    @property
    def computed(self) -> int:
        CALLS.append("computed")
        return 1


class Child(Base):
    __slots__ = ("b", "a", "__weird__")  # noqa: RUF023 - the declared order is the point

    def method(self) -> int:
        return 1


class EvilKey(str):
    """A str subclass key: its == and hash are application code."""

    def __eq__(self, other: object) -> bool:
        CALLS.append("EvilKey.__eq__")
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        CALLS.append("EvilKey.__hash__")
        return str.__hash__(self)

    def __str__(self) -> str:
        CALLS.append("EvilKey.__str__")
        return "evil"


# -- type slots ----------------------------------------------------------------------


def test_type_names_and_mro_come_from_the_slots_not_the_metaclass() -> None:
    assert introspect.type_name(Child) == "Child"
    assert introspect.qualified_name(Child) == f"{__name__}.Child"
    assert introspect.qualified_name(int) == "int"
    assert introspect.mro(Child) == (Child, Base, object)
    assert introspect.type_name(42) == "object"  # type: ignore[arg-type]  # not a type


def test_is_in_and_inherits_compare_classes_by_identity() -> None:
    assert introspect.is_in(Base, (int, Base))
    assert not introspect.is_in(Child, (int, Base))  # Meta.__eq__ would say yes
    assert introspect.inherits(Child, Base)
    assert not introspect.inherits(int, Base)  # Meta.__subclasscheck__ would say yes
    assert introspect.is_heap_type(Child) and not introspect.is_heap_type(int)


def test_static_lookup_returns_descriptors_without_calling_them() -> None:
    assert type(introspect.static_lookup(Child, "prop")) is Recorded
    assert type(introspect.static_lookup(Child, "computed")) is property
    assert introspect.static_lookup(Child, "nothing") is MISSING
    assert introspect.static_lookup(int, "__add__") is int.__dict__["__add__"]
    assert introspect.defining_class(Child, "prop") is Base
    assert introspect.defining_class(Child, "nothing") is None


def test_a_namespace_with_a_key_that_is_not_a_str_is_never_searched() -> None:
    Dirty = type("Dirty", (), {EvilKey("x"): 1, "y": 2})
    CALLS.clear()  # building the class hashed the key
    assert not introspect.clean_namespace(Dirty)
    assert introspect.static_lookup(Dirty, "x") is UNREADABLE
    assert introspect.static_lookup(Dirty, "y") is UNREADABLE
    assert introspect.defining_class(Dirty, "y") is Dirty
    assert not introspect.shape(Dirty).clean
    assert introspect.clean_namespace(Child) and introspect.shape(Child).clean


def test_assigning_to_a_class_stores_an_exact_str_key() -> None:
    class Later:
        pass

    setattr(Later, EvilKey("z"), 3)
    CALLS.clear()
    assert introspect.clean_namespace(Later)
    assert introspect.static_lookup(Later, "z") == 3


# -- instance state -------------------------------------------------------------------


def test_shape_finds_slots_in_declared_order_without_dunders() -> None:
    found = introspect.shape(Child)
    assert [name for name, _ in found.slots] == ["b", "a"]
    assert found.dict_get is not None  # Base has a __dict__
    assert introspect.shape(Child) is found  # cached


def test_instance_dict_reads_the_slot_even_past_a_dict_property() -> None:
    class Stored:
        pass

    class Proxy(Stored):
        @property
        def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
            CALLS.append("__dict__ property")
            return {"fake": 1}

    p = Proxy()
    object.__setattr__(p, "real", 2)
    assert introspect.instance_dict(p) == {"real": 2}
    assert introspect.shape(Proxy).dict_computed


class Recording(dict):  # type: ignore[type-arg]
    """A dict subclass whose every overridable method records."""

    def __getitem__(self, key: object) -> Any:
        CALLS.append("Recording.__getitem__")
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        CALLS.append("Recording.__contains__")
        return True

    def __iter__(self) -> Iterator[Any]:
        CALLS.append("Recording.__iter__")
        return iter(())

    def __len__(self) -> int:
        CALLS.append("Recording.__len__")
        return 0

    def keys(self) -> Any:  # type: ignore[override]
        CALLS.append("Recording.keys")
        return []

    def items(self) -> Any:  # type: ignore[override]
        CALLS.append("Recording.items")
        return []

    def get(self, *args: object) -> Any:  # type: ignore[override]
        CALLS.append("Recording.get")
        return None

    def __missing__(self, key: object) -> Any:
        CALLS.append("Recording.__missing__")
        return None


def test_a_dict_subclass_as_instance_dict_is_returned_as_it_is() -> None:
    class Plain:
        pass

    o = Plain()
    o.__dict__ = Recording(a=1)
    d = introspect.instance_dict(o)
    assert type(d) is Recording
    assert dict.get(d, "a") == 1
    assert introspect.str_keys(d)
    assert introspect.instance_dict(42) is None  # no __dict__


def test_str_keys_finds_a_str_subclass_key_without_comparing_it() -> None:
    d: dict[Any, int] = {"a": 1}
    d[EvilKey("b")] = 2
    CALLS.clear()
    assert not introspect.str_keys(d)
    assert not introspect.str_keys(Recording({EvilKey("c"): 1}))
    CALLS.clear()
    assert introspect.str_keys({"a": 1, "b": 2})


def test_plain_str_copies_a_str_subclass_through_str_itself() -> None:
    assert introspect.plain_str(EvilKey("k")) == "k"
    assert type(introspect.plain_str(EvilKey("k"))) is str
    assert introspect.plain_str(3) is None


# -- storage of builtins -------------------------------------------------------------


def _overriding(base: type) -> type:
    def __len__(self: Any) -> int:
        CALLS.append(f"{base.__name__}.__len__")
        return 0

    def __iter__(self: Any) -> Iterator[Any]:
        CALLS.append(f"{base.__name__}.__iter__")
        return iter(())

    return type(f"Hostile{base.__name__}", (base,), {"__len__": __len__, "__iter__": __iter__})


@pytest.mark.parametrize(
    ("base", "value", "stored"),
    [
        (list, [1, 2, 3], [1, 2, 3]),
        (tuple, (1, 2), [1, 2]),
        (str, "abc", ["a", "b", "c"]),
        (bytes, b"ab", [97, 98]),
        (bytearray, b"ab", [97, 98]),
        (dict, {"a": 1, "b": 2}, ["a", "b"]),
        (set, {7}, [7]),
        (frozenset, {8}, [8]),
        (collections.deque, [1, 2], [1, 2]),
        (collections.OrderedDict, {"x": 1}, ["x"]),
        (collections.Counter, {"c": 3}, ["c"]),
    ],
)
def test_length_and_elements_read_the_storage_of_a_subclass(
    base: type, value: Any, stored: list[Any]
) -> None:
    hostile = _overriding(base)(value)
    CALLS.clear()  # Counter's constructor tests its own truth
    assert introspect.length(hostile, base) == len(stored)
    assert list(introspect.elements(hostile, base)) == stored
    exact = base(value)
    assert introspect.length(exact, base) == len(stored)
    assert list(introspect.elements(exact, base)) == stored


def test_length_refuses_what_is_not_a_builtin_container() -> None:
    with pytest.raises(TypeError):
        introspect.length(Child(), Child)
    with pytest.raises(TypeError):
        introspect.elements(3, int)


# -- exceptions ---------------------------------------------------------------------------


class Shown:
    def __str__(self) -> str:
        CALLS.append("Shown.__str__")
        return "s"

    __repr__ = __str__


def test_text_parts_name_the_fields_str_formats() -> None:
    syntax = SyntaxError("bad")
    msg = Shown()
    syntax.msg = msg
    assert introspect.text_parts(syntax)[0] == ("bad",)
    assert any(part is msg for part in introspect.text_parts(syntax))
    oserror = OSError(2, "gone")
    strerror = Shown()
    oserror.strerror = strerror
    assert any(part is strerror for part in introspect.text_parts(oserror))
    unicode = UnicodeDecodeError("utf-8", b"x", 0, 1, "bad")
    reason = Shown()
    unicode.reason = reason  # type: ignore[misc]
    assert any(part is reason for part in introspect.text_parts(unicode))
    assert introspect.text_parts(KeyError("k")) == (("k",),)


def test_exception_slots() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as outer:
        assert introspect.exc_args(outer) == ("outer",)
        assert type(introspect.exc_cause(outer)) is KeyError
        assert introspect.exc_context(outer) is introspect.exc_cause(outer)
        assert introspect.exc_suppress_context(outer) is True
        assert introspect.exc_traceback(outer) is not None


# -- modules ------------------------------------------------------------------------------


def test_scan_for_reads_the_first_entries_only() -> None:
    ns: dict[Any, Any] = {EvilKey("other"): "evil", "__name__": "real", "late": 1}
    CALLS.clear()
    assert introspect.scan_for(ns, "__name__") == "real"
    assert introspect.scan_for(ns, "other") is MISSING  # only exact str keys match
    assert introspect.scan_for(ns, "late", limit=2) is MISSING
    assert introspect.scan_for(ns, "late") == 1


def test_loaded_namespace_of_modules() -> None:
    assert introspect.loaded_namespace(sys) is introspect.module_dict(sys)
    assert introspect.loaded_namespace(Child()) is None
    assert introspect.loaded_namespace(None) is None

    class Custom(types.ModuleType):
        def __getattribute__(self, name: str) -> Any:
            CALLS.append(f"Custom.__getattribute__ {name}")
            return types.ModuleType.__getattribute__(self, name)

    custom = Custom("custom")
    assert introspect.loaded_namespace(custom) is introspect.module_dict(custom)


def test_a_lazy_module_is_not_loaded_until_its_body_ran(tmp_path: Path) -> None:
    ran: list[str] = []
    path = tmp_path / "lazy_probe_mod.py"
    path.write_text("RAN.append('body')\nVALUE = 1\n")
    spec = importlib.util.spec_from_file_location("lazy_probe_mod", path)
    assert spec is not None and spec.loader is not None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    introspect.module_dict(module)["RAN"] = ran  # before the body: the probe's list
    assert introspect.loaded_namespace(module) is None
    assert ran == []
    assert module.VALUE == 1  # the application's own access runs the body
    assert ran == ["body"]
    assert introspect.loaded_namespace(module) is introspect.module_dict(module)


def test_a_module_still_initialising_is_not_loaded(tmp_path: Path) -> None:
    seen: list[Any] = []
    path = tmp_path / "initialising_probe_mod.py"
    path.write_text(
        textwrap.dedent(
            """
            import sys
            from runtime_agent import introspect
            SEEN.append(introspect.loaded_namespace(sys.modules[__name__]))
            """
        )
    )
    spec = importlib.util.spec_from_file_location("initialising_probe_mod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.SEEN = seen  # type: ignore[attr-defined]
    sys.modules["initialising_probe_mod"] = module
    try:
        spec._initializing = True  # type: ignore[attr-defined]  # as importlib does
        spec.loader.exec_module(module)
        spec._initializing = False  # type: ignore[attr-defined]
        assert seen == [None]
        assert introspect.loaded_namespace(module) is introspect.module_dict(module)
    finally:
        del sys.modules["initialising_probe_mod"]
