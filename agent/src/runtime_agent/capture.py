"""Capturing values without running application code.

Nothing here calls a user-defined ``__repr__``, ``__str__``, ``__eq__``,
``__hash__``, ``__len__``, ``__iter__``, ``__getattr__``, property or other
descriptor. Objects are walked through their instance ``__dict__`` (read with
the type's own C-level slot, never a ``__dict__`` property) and ``__slots__``
member descriptors; builtin containers through the C methods of their base
type, even in subclasses that override them; everything else is shown by type
name and id.

The JSON shape, one dict per value:

- ``{"type": "int", "value": 42}``: None, bool, int, float, str (masked and
  cut at ``max_string`` with ``"truncated": true, "size": N``), and as text:
  bytes, Decimal, Fraction, complex, datetime types, UUID, enum members;
- ``{"type": "list", "size": N, "items": [...]}`` for list, tuple, set,
  frozenset, deque (``"truncated": true`` past ``max_items``);
- ``{"type": "dict", "size": N, "fields": {...}}`` when the keys are strings,
  else ``"entries": [[key, value], ...]``;
- ``{"type": "module.Class", "fields": {...}}`` for objects, dataclasses,
  named tuples, pydantic models; ``"size"`` and ``"truncated"`` past
  ``max_fields``;
- ``{"type": "ValueError", "args": {...}, "frames": ["file:line in func"]}``
  for exceptions;
- markers: ``{"type": ..., "redacted": true}``,
  ``{"type": ..., "notCaptured": "depth limit" | "snapshot size limit" | ...}``,
  and ``{"type": ..., "ref": "cycle"}`` where a value contains itself.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import math
import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime_agent.redact import REDACTED, Redactor

_TEXT_TYPES = frozenset(
    {
        decimal.Decimal,
        fractions.Fraction,
        complex,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        uuid.UUID,
    }
)
_SEQUENCES = {list: list, tuple: tuple, set: set, frozenset: frozenset, collections.deque: None}
_NO_REDACTOR = Redactor()
_TYPE_DICT = type.__dict__["__dict__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]
_EXC_ARGS = BaseException.__dict__["args"]
_EXC_TB = BaseException.__dict__["__traceback__"]


@dataclass(frozen=True)
class CaptureLimits:
    """How much of a value to capture (in the range of the anchors' defaults)."""

    max_depth: int = 3
    max_fields: int = 20
    max_items: int = 100
    max_string: int = 256
    max_bytes: int = 65536


LIMITS = CaptureLimits()


class CaptureBudget:
    """The approximate bytes one snapshot may still spend."""

    __slots__ = ("left",)

    def __init__(self, max_bytes: int = LIMITS.max_bytes) -> None:
        self.left = max_bytes

    def spend(self, amount: int) -> bool:
        """Take ``amount`` bytes; False when the snapshot is full."""
        self.left -= amount
        return self.left >= 0


def class_dict(cls: type) -> Mapping[str, Any]:
    """A class's own namespace, read without its metaclass's help."""
    return _TYPE_DICT.__get__(cls)


def type_name(cls: type) -> str:
    """``module.Qualname`` of a class, read without running its code."""
    ns = class_dict(cls)
    module = ns.get("__module__")
    qualname = _TYPE_QUALNAME.__get__(cls)
    if not isinstance(module, str) or module == "builtins":
        return str(qualname)
    return f"{module}.{qualname}"


def static_lookup(cls: type, name: str) -> Any:
    """A class attribute found in the MRO's namespaces, like ``inspect.getattr_static``."""
    for klass in type.__dict__["__mro__"].__get__(cls):
        ns = class_dict(klass)
        if name in ns:
            return ns[name]
    return _MISSING


_MISSING = object()


def instance_dict(obj: object) -> dict[str, Any] | None:
    """The instance ``__dict__`` through the type's C slot; None when there is no safe one."""
    slot = static_lookup(type(obj), "__dict__")
    if type(slot) is not types.GetSetDescriptorType:
        return None  # no dict, or a property named __dict__: never run it
    try:
        value = slot.__get__(obj)
    except (AttributeError, TypeError):
        return None
    return value if type(value) is dict else None


def slot_values(obj: object) -> list[tuple[str, Any]]:
    """``__slots__`` members that are set, read through their member descriptors."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for klass in type.__dict__["__mro__"].__get__(type(obj)):
        ns = class_dict(klass)
        slots = ns.get("__slots__")
        if isinstance(slots, str):
            slots = (slots,)
        if not isinstance(slots, (tuple, list)):
            continue
        for name in slots:
            if not isinstance(name, str) or name in seen or name in ("__dict__", "__weakref__"):
                continue
            seen.add(name)
            descriptor = ns.get(_mangle(klass, name))
            if type(descriptor) is not types.MemberDescriptorType:
                continue
            try:
                out.append((name, descriptor.__get__(obj)))
            except AttributeError:
                continue  # declared but never set
    return out


def _mangle(klass: type, name: str) -> str:
    if name.startswith("__") and not name.endswith("__"):
        return f"_{_TYPE_QUALNAME.__get__(klass).rsplit('.', 1)[-1].lstrip('_')}{name}"
    return name


@dataclass(frozen=True)
class _Layout:
    """How to read a class's instances without running their code (cached per class)."""

    name: str
    dict_slot: Any  # the C getset for __dict__, or None
    slots: tuple[tuple[str, Any], ...]  # (name, member descriptor)
    order: dict[str, int]  # dataclass field order, or empty


_LAYOUTS: dict[type, _Layout] = {}
_MAX_LAYOUTS = 4096


def layout(cls: type) -> _Layout:
    """The cached layout of a class.

    Caching is safe even if the class changes later: the descriptors kept are
    the C slots found when it was first seen, which run no user code.
    """
    known = _LAYOUTS.get(cls)
    if known is not None:
        return known
    slot = static_lookup(cls, "__dict__")
    dict_slot = slot if type(slot) is types.GetSetDescriptorType else None
    slots: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for klass in type.__dict__["__mro__"].__get__(cls):
        ns = class_dict(klass)
        names = ns.get("__slots__")
        if isinstance(names, str):
            names = (names,)
        if not isinstance(names, (tuple, list)):
            continue
        for name in names:
            if not isinstance(name, str) or name in seen or name in ("__dict__", "__weakref__"):
                continue
            seen.add(name)
            member = ns.get(_mangle(klass, name))
            if type(member) is types.MemberDescriptorType:
                slots.append((name, member))
    fields = static_lookup(cls, "__dataclass_fields__")
    order = {str(n): i for i, n in enumerate(fields)} if type(fields) is dict else {}
    result = _Layout(type_name(cls), dict_slot, tuple(slots), order)
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.clear()
    _LAYOUTS[cls] = result
    return result


class _Walker:
    def __init__(self, limits: CaptureLimits, redactor: Redactor, budget: CaptureBudget) -> None:
        self.limits = limits
        self.redactor = redactor
        self.budget = budget
        self.path: set[int] = set()

    def value(self, value: Any, depth: int) -> dict[str, Any]:
        kind = type(value)
        # The common scalars first, with the budget arithmetic inlined: this
        # runs for every captured value on the host's thread.
        if kind is str:
            return self._str(value)
        budget = self.budget
        budget.left -= 24
        if budget.left < 0:
            return {"type": _name(kind), "notCaptured": "snapshot size limit"}
        if kind is int:
            if -_BIG_INT < value < _BIG_INT:
                return {"type": "int", "value": value}
            return self._int(value)
        if value is None:
            return {"type": "NoneType", "value": None}
        if kind is bool:
            return {"type": "bool", "value": value}
        if kind is float:
            if math.isfinite(value):
                return {"type": "float", "value": value}
            return {"type": "float", "value": str(value)}
        exact = _EXACT_CONTAINERS.get(kind)
        if exact is not None:  # a builtin container, not a subclass: no checks needed
            if depth >= self.limits.max_depth:
                return {"type": kind.__name__, "notCaptured": "depth limit"}
            return self._enter(value, kind, depth, exact)
        if kind in (bytes, bytearray, memoryview):
            return self._bytes(value, kind)
        if kind in _TEXT_TYPES:
            text = str(value)
            self.budget.spend(len(text))
            return {"type": kind.__name__, "value": text}
        # issubclass on the real type, never isinstance: isinstance may read a
        # user-defined __class__.
        if issubclass(kind, enum.Enum):
            return self._enum(value)
        if kind in (types.FunctionType, types.BuiltinFunctionType, types.MethodType):
            return {"type": "function", "value": self._callable_name(value)}
        if issubclass(kind, type):
            return {"type": "class", "value": type_name(value)}
        if kind is types.ModuleType:
            namespace = instance_dict(value) or {}
            return {"type": "module", "value": str(namespace.get("__name__", "?"))}
        if depth >= self.limits.max_depth:
            return {"type": _name(kind), "notCaptured": "depth limit"}
        return self._enter(value, kind, depth, None)

    def _enter(self, value: Any, kind: type, depth: int, base: type | None) -> dict[str, Any]:
        ident = id(value)
        if ident in self.path:
            return {"type": _name(kind), "ref": "cycle"}
        self.path.add(ident)
        try:
            if base is dict:
                return self._dict(value, kind, depth)
            if base is not None:
                return self._sequence(value, kind, base, depth)
            return self._compound(value, kind, depth)
        finally:
            self.path.discard(ident)

    def _compound(self, value: Any, kind: type, depth: int) -> dict[str, Any]:
        if issubclass(kind, BaseException):
            return self._exception(value, depth)
        if issubclass(kind, dict):
            return self._dict(value, kind, depth)
        base = next(
            (b for b in (list, tuple, set, frozenset, collections.deque) if issubclass(kind, b)),
            None,
        )
        if base is not None:
            if base is tuple and static_lookup(kind, "_fields") is not _MISSING:
                return self._namedtuple(value, kind, depth)
            return self._sequence(value, kind, base, depth)
        return self._object(value, kind, depth)

    def _int(self, value: int) -> dict[str, Any]:
        if value.bit_length() > 200:
            # Converting a huge int to text is quadratic (and capped by Python).
            return {"type": "int", "value": f"<int of {value.bit_length()} bits>"}
        return {"type": "int", "value": value}

    def _str(self, value: str) -> dict[str, Any]:
        limit = self.limits.max_string
        text = value if len(value) <= limit else value[:limit]
        text = self.redactor.mask_text(text)
        budget = self.budget
        budget.left -= 24 + len(text)
        if budget.left < 0:
            return {"type": "str", "notCaptured": "snapshot size limit", "size": len(value)}
        out: dict[str, Any] = {"type": "str", "value": text}
        if len(value) > limit:
            out.update(truncated=True, size=len(value))
        return out

    def _bytes(self, value: Any, kind: type) -> dict[str, Any]:
        limit = self.limits.max_string
        raw = bytes(value[:limit]) if kind is not memoryview else value[:limit].tobytes()
        text = self.redactor.mask_text(repr(raw))
        self.budget.spend(len(text))
        out: dict[str, Any] = {"type": kind.__name__, "value": text}
        if len(value) > limit:
            out.update(truncated=True, size=len(value))
        return out

    def _enum(self, value: enum.Enum) -> dict[str, Any]:
        fields = instance_dict(value) or {}
        name = fields.get("_name_")
        inner = fields.get("_value_")
        out: dict[str, Any] = {
            "type": type_name(type(value)),
            "value": f"{_TYPE_QUALNAME.__get__(type(value))}.{name}",
        }
        if type(inner) in (int, str, float, bool):
            out["enum_value"] = inner
        return out

    def _callable_name(self, value: Any) -> str:
        target = value.__func__ if type(value) is types.MethodType else value
        if type(target) is types.FunctionType:
            return str(types.FunctionType.__dict__["__qualname__"].__get__(target))
        if type(target) is types.BuiltinFunctionType:
            return str(types.BuiltinFunctionType.__dict__["__qualname__"].__get__(target))
        return type_name(type(target))

    def _sequence(self, value: Any, kind: type, base: type, depth: int) -> dict[str, Any]:
        size = base.__len__(value)
        items = []
        iterator = base.__iter__(value)  # the base type's C iterator, never an override
        for index, item in enumerate(iterator):
            if index >= self.limits.max_items:
                break
            items.append(self.value(item, depth + 1))
        out: dict[str, Any] = {"type": _name(kind), "size": size, "items": items}
        if size > len(items):
            out["truncated"] = True
        if kind is not base:
            self._add_fields(out, value, depth)
        return out

    def _namedtuple(self, value: tuple, kind: type, depth: int) -> dict[str, Any]:
        names = static_lookup(kind, "_fields")
        items = tuple.__iter__(value)
        fields: dict[str, Any] = {}
        for name, item in zip(names if isinstance(names, tuple) else (), items, strict=False):
            if len(fields) >= self.limits.max_fields:
                break
            fields[str(name)] = self._field(str(name), item, depth)
        return {"type": type_name(kind), "fields": fields}

    def _dict(self, value: dict, kind: type, depth: int) -> dict[str, Any]:
        size = dict.__len__(value)
        pairs = []
        for index, (key, item) in enumerate(dict.items(value)):
            if index >= self.limits.max_items:
                break
            pairs.append((key, item))
        out: dict[str, Any] = {"type": _name(kind), "size": size}
        string_keys = True
        for k, _ in pairs:
            if type(k) is not str:
                string_keys = False
                break
        if string_keys:
            out["fields"] = {k: self._field(k, v, depth) for k, v in pairs}
        else:
            out["entries"] = [
                [self.value(k, depth + 1), self._field(k, v, depth)] for k, v in pairs
            ]
        if size > len(pairs):
            out["truncated"] = True
        if kind is not dict:
            self._add_fields(out, value, depth, key="attributes")
        return out

    def _field(self, name: object, value: Any, depth: int) -> dict[str, Any]:
        if self.redactor.is_sensitive(name):
            return {"type": _name(type(value)), "redacted": True}
        return self.value(value, depth + 1)

    def _object(self, value: Any, kind: type, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {"type": layout(kind).name}
        if not self._add_fields(out, value, depth):
            out["id"] = hex(id(value))
        return out

    def _add_fields(self, out: dict[str, Any], value: Any, depth: int, key: str = "fields") -> bool:
        shape = layout(type(value))
        members: list[tuple[str, Any]] = []
        if shape.dict_slot is not None:
            try:
                namespace = shape.dict_slot.__get__(value)
            except (AttributeError, TypeError):
                namespace = None
            if type(namespace) is dict:
                members.extend(dict.items(namespace))
        for name, member in shape.slots:
            try:
                members.append((name, member.__get__(value)))
            except AttributeError:
                continue  # declared but never set
        if not members:
            return False
        if shape.order:  # dataclass: its declared field order first
            rank = shape.order
            members.sort(key=lambda kv: rank.get(kv[0], len(rank)))
        fields: dict[str, Any] = {}
        limit = self.limits.max_fields
        for name, item in members:
            if len(fields) >= limit:
                break
            fields[str(name)] = self._field(name, item, depth)
        out[key] = fields
        if len(members) > len(fields):
            out.update(truncated=True, size=len(members))
        return True

    def _exception(self, value: BaseException, depth: int) -> dict[str, Any]:
        args = _EXC_ARGS.__get__(value)
        out: dict[str, Any] = {
            "type": type_name(type(value)),
            "args": self.value(args, depth) if type(args) is tuple else {"type": "?"},
        }
        frames = []
        tb = _EXC_TB.__get__(value)
        while tb is not None and len(frames) < 20:
            code = tb.tb_frame.f_code
            frames.append(f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}")
            tb = tb.tb_next
        if frames:
            out["frames"] = frames
        self._add_fields(out, value, depth)
        return out


_BUILTIN_NAMES = frozenset({int, float, str, bytes, list, tuple, dict, set, frozenset})
_BIG_INT = 1 << 200
_EXACT_CONTAINERS: dict[type, type] = {
    list: list,
    tuple: tuple,
    dict: dict,
    set: set,
    frozenset: frozenset,
    collections.deque: collections.deque,
}


def _name(kind: type) -> str:
    return kind.__name__ if kind in _BUILTIN_NAMES or kind in _SEQUENCES else type_name(kind)


def capture_value(
    value: Any,
    *,
    limits: CaptureLimits = LIMITS,
    redactor: Redactor | None = None,
    budget: CaptureBudget | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable description of one value (see the module docstring)."""
    walker = _Walker(limits, redactor or _NO_REDACTOR, budget or CaptureBudget(limits.max_bytes))
    try:
        return walker.value(value, 0)
    except Exception as exc:  # a value we failed to read: say so, never raise
        return {"type": "unknown", "notCaptured": f"capture failed: {type(exc).__name__}"}


def capture_namespace(
    names: Mapping[str, Any],
    *,
    limits: CaptureLimits = LIMITS,
    redactor: Redactor | None = None,
    budget: CaptureBudget | None = None,
) -> dict[str, dict[str, Any]]:
    """Captures of a frame's variables; sensitive names come back redacted."""
    redactor = redactor or _NO_REDACTOR
    walker = _Walker(limits, redactor, budget or CaptureBudget(limits.max_bytes))
    out: dict[str, dict[str, Any]] = {}
    try:
        items = list(dict.items(names)) if isinstance(names, dict) else list(names.items())
    except Exception:
        return out
    sensitive = redactor.is_sensitive
    for name, value in items:
        name = str(name)
        if sensitive(name):
            out[name] = {"type": _name(type(value)), "redacted": True}
            continue
        try:
            out[name] = walker.value(value, 0)
        except Exception as exc:  # a value we failed to read: say so, never raise
            out[name] = {"type": "unknown", "notCaptured": f"capture failed: {type(exc).__name__}"}
        walker.path.clear()
    return out


_PLAIN = frozenset(
    {
        int,
        float,
        bool,
        type(None),
        decimal.Decimal,
        fractions.Fraction,
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
    }
)
_RENDER_LIMITS = CaptureLimits(max_depth=2, max_fields=8, max_items=10, max_string=120)


def render(
    value: Any, *, redactor: Redactor | None = None, max_length: int = 256, mask: bool = True
) -> str:
    """One line of text for a log template, never calling application code.

    ``mask=False`` leaves value masking to the caller, which a template does
    once over the whole line rather than once per field.
    """
    kind = type(value)
    if kind is str:
        text = value
    elif kind in _PLAIN:
        text = _int_text(value) if kind is int else str(value)
    else:
        text = _format(capture_value(value, limits=_RENDER_LIMITS, redactor=redactor))
    if len(text) > max_length:
        text = text[: max_length - 3] + "..."
    if mask:
        return (redactor or _NO_REDACTOR).mask_text(text)
    return text


def _int_text(value: int) -> str:
    return str(value) if value.bit_length() <= 200 else f"<int of {value.bit_length()} bits>"


def _format(node: dict[str, Any]) -> str:
    """A captured value as Python-like text."""
    if node.get("redacted"):
        return REDACTED
    if "notCaptured" in node:
        return f"<{node['type']}: {node['notCaptured']}>"
    if "ref" in node:
        return f"<{node['type']}: cycle>"
    kind = node["type"]
    more = ", ..." if node.get("truncated") else ""
    if "value" in node:
        value = node["value"]
        return repr(value) if kind == "str" else str(value)
    if "items" in node:
        inner = ", ".join(_format(item) for item in node["items"])
        if kind == "tuple":
            return f"({inner}{more})"
        if kind in ("set", "frozenset"):
            return f"{{{inner}{more}}}"
        return f"[{inner}{more}]"
    if "entries" in node:
        inner = ", ".join(f"{_format(k)}: {_format(v)}" for k, v in node["entries"])
        return f"{{{inner}{more}}}"
    if kind == "dict" and "fields" in node:
        inner = ", ".join(f"{k!r}: {_format(v)}" for k, v in node["fields"].items())
        return f"{{{inner}{more}}}"
    if "fields" in node:
        inner = ", ".join(f"{k}={_format(v)}" for k, v in node["fields"].items())
        return f"{kind.rsplit('.', 1)[-1]}({inner}{more})"
    if "args" in node:
        return f"{kind.rsplit('.', 1)[-1]}{_format(node['args'])}"
    return f"<{kind} at {node.get('id', '?')}>"
