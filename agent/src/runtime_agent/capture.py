"""Capturing values without running application code.

Nothing here calls a user-defined ``__repr__``, ``__str__``, ``__format__``,
``__eq__``, ``__hash__``, ``__len__``, ``__iter__``, ``__getattr__``,
``__getattribute__``, property or other descriptor, nor a metaclass's.
Objects are read through ``introspect``, the agent's one object reader. How:

- types are told apart by identity (``type(v) is list``) and by ``id`` in the
  dispatch table, never by hashing a class (a metaclass may define
  ``__hash__``) nor by ``isinstance`` (which may read ``__class__``); class
  and function names are read from their slots as plain str;
- objects are walked through their instance ``__dict__``, read with the C
  ``__dict__`` slot ``introspect.shape`` finds in the class namespaces (a
  ``__dict__`` property is never run; a dict subclass put there is read with
  ``dict``'s own methods), and their ``__slots__``, read through the member
  descriptors' C ``__get__``; dunder-named slots are framework internals and
  left out;
- builtin containers, and subclasses of them, through the C methods of the
  builtin base (``list.__iter__(x)``, ``dict.items(x)``), never an override,
  so a subclass shows its real storage; keys are never looked up, hashed or
  compared, only iterated; a str subclass key reads as its plain text;
- exceptions through ``BaseException``'s slots (args, traceback, cause,
  context) and their fields' member descriptors, never ``str()``;
- a frame namespace that is neither a dict nor 3.13's frame proxy (a class
  body's ``__prepare__`` mapping) is application code and is not read;
- text of stdlib value types (Decimal, UUID, datetime, ...) comes from C
  code or from their slots, and an aware datetime whose ``tzinfo`` is not the
  stdlib's shows its local time and the tzinfo's type: ``utcoffset`` of an
  application's tzinfo is application code.

The JSON shape: one dict per value, always with ``"type"`` (builtin and stdlib
value types by short name, other classes as ``module.Qualname``):

- scalars: ``{"type": "int", "value": 42}``; ``"value"`` is a JSON scalar:
  None, bool, int (a huge one as ``"<int of N bits>"``), float (non-finite as
  ``"nan"``/``"inf"``), str; and as text: bytes (``"b'...'"``), Decimal,
  Fraction, complex, range, datetime types, UUID, paths, functions
  (``module.qualname``), classes, modules. Text past ``max_string`` is cut,
  with ``"truncated": true, "size": <original length>``;
- enums: ``{"type": "shop.Side", "value": "Side.BUY", "enumValue": {...}}``;
- sequences (list, tuple, set, frozenset, deque):
  ``{"type": "list", "size": 5000, "items": [...], "truncated": true}``;
- dicts: ``{"type": "dict", "size": 2, "fields": {"key": {...}}}`` when every
  captured key is a str, else ``"entries": [[{key}, {value}], ...]``;
- objects, dataclasses, named tuples, pydantic models (``__dict__`` plus
  ``__pydantic_extra__``): ``{"type": "shop.Trade", "fields": {...}}``, with
  ``"truncated": true, "size": <field count>`` past ``max_fields``; an object
  with no readable state: ``{"type": "shop.Conn", "id": "0x7f..."}``;
- exceptions: ``{"type": "ValueError", "args": {tuple}, "frames":
  ["file:line:function", ...], "cause": {...}, "context": {...}}`` (the 20
  innermost frames, the most recent last);
- instance attributes of something whose content is elsewhere (a dict or list
  subclass, an exception, a str subclass): ``"attributes": {...}``, with
  ``"attributesSize"`` past ``max_fields``;
- field names are the str keys and attribute names, masked and cut like
  strings (``"... #2"`` when two come out alike); a str subclass key reads as
  its plain text, a non-str attribute name as ``"<Type key>"``;
- markers: ``{"type": "str", "redacted": true}`` (sensitive name, or an int
  that is a card number); ``{"type": ..., "notCaptured": "depth limit" |
  "snapshot size limit" | "capture failed: <Error>"}`` (containers and
  strings keep their ``"size"``); a value that contains itself: the outer one
  gets ``"id": "#1"`` and the inner occurrence is ``{"type": "list", "ref":
  "#1"}`` (only cycles: a value met twice side by side is captured twice).

Strings, string keys and the text of text-like values are masked with
``Redactor.mask_text`` (card numbers, tokens, keys); a field, key or variable
with a sensitive name keeps only its type, and so does the second item of a
pair whose first item is a sensitive name (``("Authorization", "Basic ...")``,
ASGI's ``(b"cookie", b"...")``). ``os.environ`` is captured as its variables
by name (``{"type": "os._Environ", "size": 40, "fields": {...}}``), decoded
from the bytes POSIX keeps. Given an event's ``EventSecrets``, every value
redacted here joins it (``redact.py``: secrets that travel).

Bounds: ``CaptureLimits`` per value, and one ``CaptureBudget`` of approximate
JSON bytes shared by a whole snapshot; once spent, containers stop early
(``"truncated": true``) and later values come back as ``"snapshot size
limit"`` markers. Recursion is bounded by ``max_depth`` (itself capped at 16),
and a failure reading one value is reported in that value alone.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import itertools
import math
import os
import pathlib
import sys
import types
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from runtime_agent import introspect
from runtime_agent.introspect import inherits, plain_str, qualified_name
from runtime_agent.redact import REDACTED, EventSecrets, Redactor, looks_like_card


@dataclass(frozen=True)
class CaptureLimits:
    """How much of one value to capture."""

    max_depth: int = 3
    max_fields: int = 20
    max_items: int = 100
    max_string: int = 256
    max_bytes: int = 65536


LIMITS = CaptureLimits()
#: ``max_depth`` is capped here: each level costs a few Python frames, and the
#: host may already be deep in its own recursion.
DEPTH_CEILING = 16
SIZE_LIMIT = "snapshot size limit"
DEPTH_LIMIT = "depth limit"

# Approximate JSON bytes of a node without its text: '{"type": "str", "value": ""}, '.
_NODE_COST = 30
# Masking looks this far past a cut so a secret straddling it is still found.
_MASK_MARGIN = 64
_MAX_FRAMES = 20
_BIG_INT_BITS = 200
# Below this an int has fewer than 13 digits, so it cannot be a card number.
_CARD_FLOOR = 10**12
_CARD_CEILING = 10**19


class CaptureBudget:
    """The approximate JSON bytes one snapshot may still spend.

    Shared by every ``capture_value``/``capture_namespace`` call of one
    snapshot, so the whole snapshot stays near ``max_bytes``.
    """

    __slots__ = ("left", "max_bytes")

    def __init__(self, max_bytes: int = LIMITS.max_bytes) -> None:
        self.max_bytes = max_bytes
        self.left = max_bytes

    @property
    def spent(self) -> int:
        """Bytes spent so far."""
        return self.max_bytes - self.left

    @property
    def exhausted(self) -> bool:
        """Whether further values come back as size-limit markers."""
        return self.left < 0

    def spend(self, amount: int) -> bool:
        """Take ``amount`` bytes; False when the snapshot is full."""
        self.left -= amount
        return self.left >= 0


# Objects are read through ``introspect`` (type slots, instance dicts, slots,
# exception fields); these are the C readers of the value types shown as text.
_FUNC_QUALNAME = types.FunctionType.__dict__["__qualname__"]
_FUNC_MODULE = types.FunctionType.__dict__["__module__"]
_BUILTIN_QUALNAME = types.BuiltinFunctionType.__dict__["__qualname__"]
_BUILTIN_MODULE = types.BuiltinFunctionType.__dict__["__module__"]
_METHOD_FUNC = types.MethodType.__dict__["__func__"]
_FRACTION_PARTS = (
    fractions.Fraction.__dict__["_numerator"],
    fractions.Fraction.__dict__["_denominator"],
)
_UUID_INT = uuid.UUID.__dict__["int"]
_DATE = datetime.date.__dict__
_DATETIME = datetime.datetime.__dict__
_TIME = datetime.time.__dict__
_DATETIME_PARTS = tuple(
    _DATE[n] if n in ("year", "month", "day") else _DATETIME[n]
    for n in ("year", "month", "day", "hour", "minute", "second", "microsecond")
)
_DATETIME_TZ = _DATETIME["tzinfo"]
_TIME_PARTS = tuple(_TIME[n] for n in ("hour", "minute", "second", "microsecond"))
_TIME_TZ = _TIME["tzinfo"]
_MISSING = introspect.MISSING


_FRAME_LOCALS = introspect.FRAME_LOCALS


# --------------------------------------------------------------------------
# Per-class layouts: how to read a class's instances, found once per class.


class _Layout:
    """How to capture instances of one class (cached per class): its handler,
    and where its state is stored (``introspect.shape``).

    Caching is safe even if the class changes later: what is kept are the C
    descriptors found when it was first seen, and they run no user code.
    """

    __slots__ = (
        "base",
        "cls",
        "dict_get",
        "fields",
        "handler",
        "has_members",
        "name",
        "pydantic_extra",
        "short",
        "slots",
    )

    def __init__(
        self,
        cls: type,
        name: str,
        handler: Callable[..., dict[str, Any]],
        base: type | None = None,
        dict_get: Any = None,
        slots: tuple[tuple[str, Any], ...] = (),
        fields: tuple[str, ...] | None = None,
        pydantic_extra: Any = None,
    ) -> None:
        self.cls = cls  # a strong reference: keeps id(cls) from being reused while cached
        self.name = name
        self.short = introspect.type_name(cls)
        self.handler = handler
        self.base = base
        self.dict_get = dict_get
        self.slots = slots
        self.fields = fields
        self.pydantic_extra = pydantic_extra
        self.has_members = dict_get is not None or bool(slots) or pydantic_extra is not None


_LAYOUTS: dict[int, _Layout] = {}  # by id(cls): a class is never hashed
_PREBUILT: dict[int, _Layout] = {}
_BASES: dict[int, tuple[Callable[..., dict[str, Any]], type]] = {}
_MAX_LAYOUTS = 4096


def _layout_of(kind: type) -> _Layout:
    shape = _LAYOUTS.get(id(kind))
    return shape if shape is not None else _new_layout(kind)


def _new_layout(kind: type) -> _Layout:
    shape = _compute_layout(kind)
    if len(_LAYOUTS) >= _MAX_LAYOUTS:  # many classes made at run time: start over
        _LAYOUTS.clear()
        _LAYOUTS.update(_PREBUILT)
    _LAYOUTS[id(kind)] = shape
    return shape


def _compute_layout(kind: type) -> _Layout:
    state = introspect.shape(kind)
    mro = state.mro
    dict_get, slots, extra = state.dict_get, state.slots, state.pydantic_extra
    name = qualified_name(kind)
    if inherits(kind, type):
        return _Layout(kind, name, _h_class)
    if inherits(kind, enum.Enum):
        return _Layout(kind, name, _h_enum, None, dict_get, slots)
    if inherits(kind, BaseException):
        return _Layout(kind, name, _h_exception, None, dict_get, slots)
    for klass in mro:
        entry = _BASES.get(id(klass))
        if entry is None:
            continue
        handler, base = entry
        fields = None
        if base is tuple:
            names = introspect.static_lookup(kind, "_fields")
            if type(names) is tuple and all(type(n) is str for n in names):
                handler, fields = _h_namedtuple, names
        return _Layout(kind, name, handler, base, dict_get, slots, fields, extra)
    return _Layout(kind, name, _h_object, None, dict_get, slots, None, extra)


# --------------------------------------------------------------------------
# The walker: one per capture call, holding the limits, the budget and the
# containers being walked (for cycles).


class _Walker:
    __slots__ = (
        "budget",
        "mask",
        "max_depth",
        "max_fields",
        "max_items",
        "max_string",
        "path",
        "refs",
        "secrets",
        "sensitive",
        "shortest",
    )

    def __init__(
        self,
        limits: CaptureLimits,
        redactor: Redactor,
        budget: CaptureBudget,
        secrets: EventSecrets | None = None,
    ) -> None:
        self.max_depth = min(limits.max_depth, DEPTH_CEILING)
        self.max_fields = limits.max_fields
        self.max_items = limits.max_items
        self.max_string = limits.max_string
        # With an event's secrets, what is masked joins them and they are masked too.
        self.mask: Callable[[str], str] = (
            redactor.mask_text if secrets is None else partial(redactor.mask_text, secrets=secrets)
        )
        self.secrets = secrets
        self.shortest = redactor.shortest_secret
        self.sensitive = redactor.is_sensitive
        self.budget = budget
        self.path: dict[int, dict[str, Any]] = {}  # id -> node of the values being walked
        self.refs = 0

    def value(self, value: Any, depth: int) -> dict[str, Any]:
        """The description of ``value`` at ``depth`` (0 for a variable)."""
        kind = type(value)
        # The common scalars first, by identity, with the budget inlined:
        # this runs for every captured value on the host's thread.
        if kind is str:
            return self.string(value)
        budget = self.budget
        budget.left -= _NODE_COST
        if budget.left < 0:
            return {"type": _layout_of(kind).name, "notCaptured": SIZE_LIMIT}
        if kind is int:
            if -_CARD_FLOOR < value < _CARD_FLOOR:
                return {"type": "int", "value": value}
            return _big_int(value)
        if value is None:
            return {"type": "NoneType", "value": None}
        if kind is bool:
            return {"type": "bool", "value": value}
        if kind is float:
            return {"type": "float", "value": value if math.isfinite(value) else str(value)}
        shape = _LAYOUTS.get(id(kind))
        if shape is None:
            shape = _new_layout(kind)
        try:
            return shape.handler(self, value, shape, depth)
        except RecursionError:
            return {"type": shape.name, "notCaptured": _RECURSION}
        except Exception as exc:  # e.g. range(10**5000): its text is over Python's limit
            return {"type": shape.name, "notCaptured": _failure(exc)}

    def string(self, value: str) -> dict[str, Any]:
        """An exact str: cut at ``max_string``, masked."""
        size = len(value)
        limit = self.max_string
        budget = self.budget
        budget.left -= _NODE_COST + min(size, limit)
        if budget.left < 0:
            return {"type": "str", "size": size, "notCaptured": SIZE_LIMIT}
        if size <= limit:
            return {"type": "str", "value": value if size < self.shortest else self.mask(value)}
        text = self.mask(value[: limit + _MASK_MARGIN])[:limit]
        return {"type": "str", "value": text, "truncated": True, "size": size}

    def text(self, name: str, text: str) -> dict[str, Any]:
        """A value shown as text (Decimal, UUID, datetime ...): cut and masked like a str."""
        size = len(text)
        limit = self.max_string
        self.budget.left -= size if size < limit else limit
        if size <= limit:
            return {"type": name, "value": text if size < self.shortest else self.mask(text)}
        cut = self.mask(text[: limit + _MASK_MARGIN])[:limit]
        return {"type": name, "value": cut, "truncated": True, "size": size}

    def enter(
        self,
        value: Any,
        shape: _Layout,
        depth: int,
        walk: Callable[[_Walker, Any, _Layout, int, dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Walk a container or object once; a value inside itself becomes a reference."""
        ident = id(value)
        path = self.path
        outer = path.get(ident)
        if outer is not None:
            ref = outer.get("id")
            if ref is None:
                self.refs += 1
                ref = outer["id"] = f"#{self.refs}"
            return {"type": shape.name, "ref": ref}
        out: dict[str, Any] = {"type": shape.name}
        path[ident] = out
        try:
            walk(self, value, shape, depth, out)
        except RecursionError:  # the host is deep in its own recursion: no calls here
            out["notCaptured"] = _RECURSION
        except Exception as exc:  # one unreadable value: say so, keep the rest
            out["notCaptured"] = _failure(exc)
        finally:
            del path[ident]
        ref = out.get("id")
        if type(ref) is str and ref.startswith("#"):
            # Put the id next to the type, where a reader looks for it.
            head = {"type": out.pop("type"), "id": out.pop("id")}
            head.update(out)
            return head
        return out

    def field(self, fields: dict[str, Any], name: str, item: Any, depth: int) -> None:
        """``fields[name]``: the item, or a redaction marker for a sensitive name."""
        key = name
        if len(key) > self.max_string:
            key = key[: self.max_string] + "..."
        if len(key) >= self.shortest:
            key = self.mask(key)  # a key can be a card number or a token too
        if key in fields:  # two keys masked alike: keep both
            key = f"{key} #{len(fields) + 1}"
        self.budget.left -= len(key) + 6  # '"key": '
        if self.sensitive(name):
            fields[key] = self.redacted(item)
        else:
            fields[key] = self.value(item, depth)

    def redacted(self, item: Any) -> dict[str, Any]:
        """The marker for a value redacted by name; the value joins the event's secrets."""
        if self.secrets is not None:
            self.secrets.add_value(item)
        return {"type": _layout_of(type(item)).name, "redacted": True}

    def members(self, value: Any, shape: _Layout, depth: int, out: dict[str, Any], key: str) -> int:
        """Instance ``__dict__``, slots and pydantic extras as ``out[key]``; their count."""
        fields: dict[str, Any] = {}
        total = 0
        limit = self.max_fields
        budget = self.budget
        child = depth + 1
        slot = shape.dict_get
        if slot is not None:
            try:
                namespace = slot(value)
            except Exception:  # e.g. a C type whose dict cannot be made
                namespace = None
            if namespace is not None and inherits(type(namespace), dict):
                total = dict.__len__(namespace)
                for name, item in itertools.islice(dict.items(namespace), limit):
                    if budget.left < 0:
                        break
                    if type(name) is not str:
                        name = plain_str(name) or f"<{_layout_of(type(name)).name} key>"
                    self.field(fields, name, item, child)
        for name, member in shape.slots:
            try:
                item = member.__get__(value)
            except AttributeError:
                continue  # declared but never set
            total += 1
            if len(fields) < limit and budget.left >= 0:
                self.field(fields, name, item, child)
        if shape.pydantic_extra is not None:
            try:
                extra = shape.pydantic_extra.__get__(value)
            except AttributeError:
                extra = None
            if type(extra) is dict:
                total += dict.__len__(extra)
                for name, item in itertools.islice(dict.items(extra), limit):
                    if len(fields) >= limit or budget.left < 0:
                        break
                    if type(name) is str:
                        self.field(fields, name, item, child)
        if not total:
            return 0
        out[key] = fields
        if total > len(fields):
            if key == "fields":
                out["truncated"] = True
                out["size"] = total
            else:
                out[f"{key}Size"] = total
        return total


_RECURSION = "capture failed: RecursionError"


def _failure(exc: BaseException) -> str:
    return f"capture failed: {introspect.type_name(type(exc))}"


def _big_int(value: int) -> dict[str, Any]:
    bits = value.bit_length()
    if bits > _BIG_INT_BITS:
        # Turning a huge int into text is quadratic (and capped by Python).
        return {"type": "int", "value": f"<int of {bits} bits>"}
    if -_CARD_CEILING < value < _CARD_CEILING and looks_like_card(str(abs(value))):
        return {"type": "int", "redacted": True}
    return {"type": "int", "value": value}


# --------------------------------------------------------------------------
# Handlers: (walker, value, layout, depth) -> node.


def _h_sequence(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if depth >= w.max_depth:
        return {"type": shape.name, "size": shape.base.__len__(value), "notCaptured": DEPTH_LIMIT}  # type: ignore[union-attr]
    return w.enter(value, shape, depth, _walk_sequence)


def _walk_sequence(w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]) -> None:
    base: Any = shape.base
    size = base.__len__(value)
    items: list[dict[str, Any]] = []
    out["size"] = size
    out["items"] = items
    budget = w.budget
    child = depth + 1
    # The base type's C iterator: an overridden __iter__ never runs.
    iterator = base.__iter__(value)
    if size == 2 and (base is tuple or base is list):
        # A header pair, ("Authorization", "Basic ...") or ASGI's [b"cookie", b"..."]:
        # a sensitive name first hides what follows it.
        name, item = iterator
        items.append(w.value(name, child))
        items.append(w.redacted(item) if w.sensitive(name) else w.value(item, child))
        iterator = iter(())
    for item in itertools.islice(iterator, w.max_items):
        items.append(w.value(item, child))
        if budget.left < 0:
            break
    if len(items) < size:
        out["truncated"] = True
    if shape.has_members:
        w.members(value, shape, depth, out, "attributes")


def _h_namedtuple(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if depth >= w.max_depth:
        return {"type": shape.name, "size": tuple.__len__(value), "notCaptured": DEPTH_LIMIT}
    return w.enter(value, shape, depth, _walk_namedtuple)


def _walk_namedtuple(
    w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]
) -> None:
    size = tuple.__len__(value)
    fields: dict[str, Any] = {}
    out["fields"] = fields
    budget = w.budget
    child = depth + 1
    pairs = zip(shape.fields or (), tuple.__iter__(value), strict=False)
    for name, item in itertools.islice(pairs, w.max_fields):
        w.field(fields, name, item, child)
        if budget.left < 0:
            break
    if len(fields) < size:
        out["truncated"] = True
        out["size"] = size


def _h_dict(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if depth >= w.max_depth:
        return {"type": shape.name, "size": dict.__len__(value), "notCaptured": DEPTH_LIMIT}
    return w.enter(value, shape, depth, _walk_dict)


def _walk_dict(w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]) -> None:
    size = dict.__len__(value)
    out["size"] = size
    # dict.items is the C view: a subclass's items/__iter__/__getitem__ never run,
    # and keys are iterated, never hashed or compared.
    pairs = list(itertools.islice(dict.items(value), w.max_items))
    budget = w.budget
    child = depth + 1
    captured = 0
    if not all(type(k) is str for k, _ in pairs):
        # str subclass keys as their plain text (read by str's C method)
        plain = [(plain_str(k), v) for k, v in pairs]
        if all(k is not None for k, _ in plain):
            pairs = plain
    if all(type(k) is str for k, _ in pairs):
        fields: dict[str, Any] = {}
        out["fields"] = fields
        for key, item in pairs:
            w.field(fields, key, item, child)
            captured += 1
            if budget.left < 0:
                break
    else:
        entries: list[list[dict[str, Any]]] = []
        out["entries"] = entries
        for key, item in pairs:
            key_node = w.value(key, child)
            item_node = w.redacted(item) if w.sensitive(key) else w.value(item, child)
            entries.append([key_node, item_node])
            captured += 1
            if budget.left < 0:
                break
    if captured < size:
        out["truncated"] = True
    if shape.has_members:
        w.members(value, shape, depth, out, "attributes")


def _h_object(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if not shape.has_members:  # nothing readable without running code
        w.budget.left -= 20
        return {"type": shape.name, "id": hex(id(value))}
    if depth >= w.max_depth:
        return {"type": shape.name, "notCaptured": DEPTH_LIMIT}
    return w.enter(value, shape, depth, _walk_object)


def _walk_object(w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]) -> None:
    if not w.members(value, shape, depth, out, "fields"):
        out["id"] = hex(id(value))


def _h_exception(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if depth >= w.max_depth:
        return {"type": shape.name, "notCaptured": DEPTH_LIMIT}
    return w.enter(value, shape, depth, _walk_exception)


def _walk_exception(
    w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]
) -> None:
    child = depth + 1
    out["args"] = w.value(introspect.exc_args(value), child)
    frames = _frames(introspect.exc_traceback(value))
    if frames:
        w.budget.left -= sum(len(f) + 4 for f in frames)
        out["frames"] = frames
    cause = introspect.exc_cause(value)
    if cause is not None:
        out["cause"] = w.value(cause, child)
    elif not introspect.exc_suppress_context(value):
        context = introspect.exc_context(value)
        if context is not None:
            out["context"] = w.value(context, child)
    if shape.has_members:
        w.members(value, shape, depth, out, "attributes")


def _frames(tb: Any) -> list[str]:
    """``file:line:function`` of a traceback, the innermost (most recent) last."""
    frames: collections.deque[str] = collections.deque(maxlen=_MAX_FRAMES)
    steps = 0
    while type(tb) is types.TracebackType and steps < 1000:
        code = tb.tb_frame.f_code
        name = code.co_qualname if sys.version_info >= (3, 11) else code.co_name
        frames.append(f"{code.co_filename}:{tb.tb_lineno}:{name}")
        tb = tb.tb_next
        steps += 1
    return list(frames)


def _h_environ(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    if depth >= w.max_depth:
        return {"type": shape.name, "notCaptured": DEPTH_LIMIT}
    return w.enter(value, shape, depth, _walk_environ)


def _walk_environ(w: _Walker, value: Any, shape: _Layout, depth: int, out: dict[str, Any]) -> None:
    """``os.environ``: its variables by name, under the name rules like a dict's keys.

    POSIX keeps them as bytes in ``_data``; they are decoded as ``os.fsdecode``
    would, by the C codec.
    """
    data: Any = None
    namespace = introspect.instance_dict(value)
    if namespace is not None:
        for key, item in dict.items(namespace):  # a scan, not a lookup: no key is compared
            if type(key) is str and key == "_data":
                data = item
                break
    if type(data) is not dict:
        out["notCaptured"] = "unexpected storage"
        return
    size = dict.__len__(data)
    fields: dict[str, Any] = {}
    out["size"] = size
    out["fields"] = fields
    encoding = sys.getfilesystemencoding()
    for key, item in itertools.islice(dict.items(data), w.max_items):
        name = bytes.decode(key, encoding, "surrogateescape") if type(key) is bytes else key
        if type(item) is bytes:
            item = bytes.decode(item, encoding, "surrogateescape")
        if type(name) is str:
            w.field(fields, name, item, depth + 1)
        if w.budget.left < 0:
            break
    if len(fields) < size:
        out["truncated"] = True


def _h_enum(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    name: Any = _MISSING
    inner: Any = _MISSING
    namespace = None
    if shape.dict_get is not None:
        try:
            namespace = shape.dict_get(value)
        except Exception:
            namespace = None
    if namespace is not None and inherits(type(namespace), dict):
        # _name_ and _value_ are set first; a scan, not a lookup, so no key is compared.
        for key, item in itertools.islice(dict.items(namespace), 8):
            if type(key) is str:
                if key == "_name_":
                    name = item
                elif key == "_value_":
                    inner = item
    label = f"{shape.short}.{name}" if type(name) is str else f"{shape.short}(?)"
    w.budget.left -= len(label)
    out: dict[str, Any] = {"type": shape.name, "value": label}
    if inner is not _MISSING:
        out["enumValue"] = w.value(inner, depth + 1)
    return out


def _h_text(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    """Exact stdlib value types whose str() is C or stdlib code with no hook to override."""
    return w.text(shape.name, str(value))


def _h_scalar_subclass(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    """A subclass of str, int or float: its builtin value, read by the base's C method."""
    base = shape.base
    if base is str:
        plain: Any = str.__str__(value)
    elif base is int:
        plain = int.__int__(value)
    else:
        plain = float.__float__(value)
    out = w.value(plain, depth)
    out["type"] = shape.name
    if shape.has_members and depth < w.max_depth:
        w.members(value, shape, depth, out, "attributes")
    return out


def _h_text_subclass(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    """A subclass of complex or Decimal: the base's C text, never the subclass's."""
    text = complex.__repr__(value) if shape.base is complex else decimal.Decimal.__str__(value)
    out = w.text(shape.name, text)
    if shape.has_members and depth < w.max_depth:
        w.members(value, shape, depth, out, "attributes")
    return out


def _h_bytes(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    base: Any = shape.base
    size = base.__len__(value)
    limit = w.max_string
    head = bytes(base.__getitem__(value, slice(0, limit)))  # the C slice of the storage
    text = repr(head)
    cut = size > limit
    if len(text) > limit:  # escapes make binary data up to 4x longer
        text, cut = text[:limit], True
    w.budget.left -= len(text)
    out: dict[str, Any] = {"type": shape.name, "value": w.mask(text)}
    if cut:
        out.update(truncated=True, size=size)
    return out


def _h_memoryview(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    try:
        size = value.nbytes
        out: dict[str, Any] = {"type": "memoryview", "size": size, "format": value.format}
        if value.c_contiguous:
            head = value.cast("B")[: w.max_string].tobytes()
            out["value"] = w.mask(repr(head)[: w.max_string])
            if size > len(head):
                out["truncated"] = True
    except (ValueError, TypeError, NotImplementedError) as exc:  # released, or exotic
        return {"type": "memoryview", "notCaptured": _failure(exc)}
    w.budget.left -= len(out.get("value", ""))
    return out


def _h_fraction(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    numerator, denominator = (part.__get__(value) for part in _FRACTION_PARTS)
    if type(numerator) is not int or type(denominator) is not int:
        return {"type": shape.name, "notCaptured": "unexpected storage"}
    text = (
        _int_text(numerator)
        if denominator == 1
        else f"{_int_text(numerator)}/{_int_text(denominator)}"
    )
    return w.text(shape.name, text)


def _h_uuid(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    number = _UUID_INT.__get__(value)
    if type(number) is not int:
        return {"type": shape.name, "notCaptured": "unexpected storage"}
    h = f"{number:032x}"
    return w.text(shape.name, f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


def _h_datetime(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    return w.text(shape.name, _datetime_text(value, shape.cls))


def _h_function(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    return w.text(shape.name, _callable_name(value))


def _h_class(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    return w.text("class", qualified_name(value))


def _h_module(w: _Walker, value: Any, shape: _Layout, depth: int) -> dict[str, Any]:
    name: Any = "?"
    namespace = introspect.module_dict(value)
    # __name__ is the module dict's first key: a scan, not a lookup.
    for key, item in itertools.islice(dict.items(namespace), 4):
        if type(key) is str and key == "__name__":
            name = item
            break
    return w.text("module", name if type(name) is str else "?")


def _int_text(value: int) -> str:
    bits = value.bit_length()
    return str(value) if bits <= _BIG_INT_BITS else f"<int of {bits} bits>"


def _callable_name(value: Any) -> str:
    kind = type(value)
    if kind is types.MethodType:
        value = _METHOD_FUNC.__get__(value)
        kind = type(value)
    if kind is types.FunctionType:
        qualname, module = _FUNC_QUALNAME.__get__(value), _FUNC_MODULE.__get__(value)
    elif kind is types.BuiltinFunctionType:
        qualname, module = _BUILTIN_QUALNAME.__get__(value), _BUILTIN_MODULE.__get__(value)
    else:
        return qualified_name(kind)
    # A function's __qualname__ may be set to a str subclass: its plain text.
    qualname = plain_str(qualname) or "?"
    if type(module) is str and module != "builtins":
        return f"{module}.{qualname}"
    return qualname


_zoneinfo_type: Any = None


def _stdlib_tz(tz: Any) -> bool:
    """A tzinfo whose utcoffset is the stdlib's: timezone, or zoneinfo's ZoneInfo."""
    global _zoneinfo_type
    kind = type(tz)
    if kind is datetime.timezone:
        return True
    if _zoneinfo_type is None:
        module = sys.modules.get("zoneinfo")  # imported only if the application uses it
        namespace = introspect.loaded_namespace(module)
        if namespace is None:
            return False
        _zoneinfo_type = introspect.scan_for(namespace, "ZoneInfo", 1000)
    return kind is _zoneinfo_type


def _datetime_text(value: Any, kind: type) -> str:
    """``str()`` of a date, time or datetime, without running application code.

    Exact types with no tzinfo or a stdlib one go through their C ``__str__``.
    A subclass, or an application's tzinfo (``utcoffset`` is its code), is
    rebuilt from the C fields as an exact value, the tzinfo shown by type.
    """
    if kind is datetime.date or kind is datetime.timedelta or kind is datetime.timezone:
        return str(value)
    if kind is datetime.datetime or kind is datetime.time:
        tz = value.tzinfo
        if tz is None or _stdlib_tz(tz):
            return str(value)
    if issubclass(kind, datetime.datetime):
        tz = _DATETIME_TZ.__get__(value)
        keep = tz if tz is None or _stdlib_tz(tz) else None
        text = str(datetime.datetime(*(p.__get__(value) for p in _DATETIME_PARTS), tzinfo=keep))
    elif issubclass(kind, datetime.date):
        return datetime.date.isoformat(value)
    elif issubclass(kind, datetime.time):
        tz = _TIME_TZ.__get__(value)
        keep = tz if tz is None or _stdlib_tz(tz) else None
        text = str(datetime.time(*(p.__get__(value) for p in _TIME_PARTS), tzinfo=keep))
    elif issubclass(kind, datetime.timedelta):
        return datetime.timedelta.__str__(value)
    else:
        return qualified_name(kind)
    if tz is not None and keep is None:
        text = f"{text} ({qualified_name(type(tz))})"
    return text


def _prebuild() -> None:
    def add(
        cls: type, handler: Callable[..., dict[str, Any]], name: str | None = None, base: Any = None
    ) -> None:
        _PREBUILT[id(cls)] = _Layout(cls, name or introspect.type_name(cls), handler, base)

    for cls in (list, tuple, set, frozenset, collections.deque):
        add(cls, _h_sequence, base=cls)
        _BASES[id(cls)] = (_h_sequence, cls)
    add(dict, _h_dict, base=dict)
    _BASES[id(dict)] = (_h_dict, dict)
    for cls in (str, int, float):
        # Exact ones never get here (Walker.value), but their names are needed.
        add(cls, _h_scalar_subclass, base=cls)
        _BASES[id(cls)] = (_h_scalar_subclass, cls)
    add(bool, _h_scalar_subclass, base=int)
    add(type(None), _h_object, name="NoneType")
    for cls in (bytes, bytearray):
        add(cls, _h_bytes, base=cls)
        _BASES[id(cls)] = (_h_bytes, cls)
    add(memoryview, _h_memoryview)
    for cls in (decimal.Decimal, complex):
        add(cls, _h_text)
        _BASES[id(cls)] = (_h_text_subclass, cls)
    add(range, _h_text)
    add(fractions.Fraction, _h_fraction)
    _BASES[id(fractions.Fraction)] = (_h_fraction, fractions.Fraction)
    add(uuid.UUID, _h_uuid)
    _BASES[id(uuid.UUID)] = (_h_uuid, uuid.UUID)
    for cls in (datetime.datetime, datetime.date, datetime.time, datetime.timedelta):
        add(cls, _h_datetime)
        _BASES[id(cls)] = (_h_datetime, cls)
    add(datetime.timezone, _h_datetime)
    for cls in {
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.WindowsPath,
    }:
        add(cls, _h_text)  # exact path types: str() is stdlib code on their own fields
    for cls in (types.FunctionType, types.BuiltinFunctionType, types.MethodType):
        add(cls, _h_function)
    add(type, _h_class)
    add(types.ModuleType, _h_module)
    environ = _compute_layout(os._Environ)  # with its __dict__ slot, for _data
    environ.handler = _h_environ
    _PREBUILT[id(os._Environ)] = environ
    _LAYOUTS.update(_PREBUILT)


_prebuild()
_DEFAULT_REDACTOR = Redactor()


# --------------------------------------------------------------------------
# Public API


def capture_value(
    value: Any,
    *,
    limits: CaptureLimits = LIMITS,
    redactor: Redactor | None = None,
    budget: CaptureBudget | None = None,
    secrets: EventSecrets | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable description of one value (see the module docstring).

    Never runs application code and never raises. Without a ``redactor`` the
    built-in rules still apply. ``budget`` is the snapshot's, when the value
    is part of one; otherwise the value gets ``limits.max_bytes`` of its own.
    ``secrets``: the event's travelling secrets, which what is redacted here
    joins (the caller masks them throughout the event with ``scrub``).
    """
    try:  # everything inside: at the host's recursion limit even a constructor can fail
        walker = _Walker(
            limits,
            redactor or _DEFAULT_REDACTOR,
            budget or CaptureBudget(limits.max_bytes),
            secrets,
        )
        return walker.value(value, 0)
    except RecursionError:
        return {"type": "unknown", "notCaptured": _RECURSION}
    except Exception as exc:  # a value we failed to read: say so, never raise
        return {"type": _safe_name(value), "notCaptured": _failure(exc)}


#: The one entry of a namespace that could not be read at all.
UNREADABLE_NAMESPACE = "<not captured>"


def capture_namespace(
    names: Mapping[str, Any],
    *,
    limits: CaptureLimits = LIMITS,
    redactor: Redactor | None = None,
    budget: CaptureBudget | None = None,
    secrets: EventSecrets | None = None,
) -> dict[str, dict[str, Any]]:
    """Captures of a frame's variables, by name; sensitive names keep only their type.

    ``names`` is a dict (or dict subclass, read through ``dict.items``) or
    3.13's ``FrameLocalsProxy``, whose own (C) ``items()`` is called; any
    other mapping (a class body's ``__prepare__`` namespace) is application
    code and is not read. One budget covers every variable: pass the
    snapshot's to share it with other frames and watch values, and the
    event's ``secrets`` (see ``capture_value``). Never raises;
    when the names cannot be listed at all, the one entry
    ``UNREADABLE_NAMESPACE`` says why.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        redactor = redactor or _DEFAULT_REDACTOR
        walker = _Walker(limits, redactor, budget or CaptureBudget(limits.max_bytes), secrets)
        kind = type(names)
        if inherits(kind, dict):
            items = list(dict.items(names))
        elif kind is _FRAME_LOCALS:
            items = list(names.items())
        else:
            shown = {"type": _safe_name(names), "notCaptured": "a namespace of application code"}
            return {UNREADABLE_NAMESPACE: shown}
    except RecursionError:
        return {UNREADABLE_NAMESPACE: {"type": "unknown", "notCaptured": _RECURSION}}
    except Exception as exc:
        return {UNREADABLE_NAMESPACE: {"type": "unknown", "notCaptured": _failure(exc)}}
    sensitive = redactor.is_sensitive
    spent = walker.budget
    for name, value in items:
        try:
            if type(name) is not str:
                name = plain_str(name)
                if name is None:
                    continue  # not a variable name
            spent.left -= len(name) + 6
            if sensitive(name):
                out[name] = walker.redacted(value)
            else:
                out[name] = walker.value(value, 0)
        except RecursionError:
            if type(name) is str:
                out[name] = {"type": "unknown", "notCaptured": _RECURSION}
        except Exception as exc:  # a value we failed to read: say so, keep the others
            if type(name) is str:
                out[name] = {"type": _safe_name(value), "notCaptured": _failure(exc)}
    return out


def _safe_name(value: Any) -> str:
    try:
        return _layout_of(type(value)).name
    except Exception:
        return "unknown"


#: Exact types whose render() text is str(): no hook to override. By id, so no
#: class is hashed (a metaclass may define __hash__).
_PLAIN_TEXT = frozenset(
    id(t) for t in (float, bool, type(None), decimal.Decimal, uuid.UUID, complex, range)
)
_DATETIME_TYPES = (datetime.date, datetime.time, datetime.timedelta, datetime.timezone)
_RENDER_LIMITS = CaptureLimits(max_depth=2, max_fields=8, max_items=10, max_string=120)


def render(
    value: Any,
    *,
    redactor: Redactor | None = None,
    max_length: int = 256,
    mask: bool = True,
    secrets: EventSecrets | None = None,
) -> str:
    """One line of text for a log template, never calling application code.

    str, int, float, bool, None, Decimal, UUID and datetime values read as
    ``str()`` would; containers as a bounded, Python-like repr; other objects
    as ``Trade(symbol='ACME', qty=3)`` from their fields. Text past
    ``max_length`` ends with ``...``; it is masked with the redactor's
    ``mask_text`` unless ``mask=False``, which leaves masking to a caller that
    masks a whole line at once (a cut is masked here anyway, since the caller
    cannot see a secret that straddles it). What is redacted joins
    ``secrets``, the event's travelling secrets, when given.
    """
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int:
        text = str(value) if -_CARD_CEILING < value < _CARD_CEILING else _int_text(value)
    elif id(kind) in _PLAIN_TEXT:
        text = str(value)
    else:
        text = _render_other(value, kind, redactor, secrets)
    red = redactor or _DEFAULT_REDACTOR
    if len(text) > max_length:
        cut = max(max_length - 3, 0)
        return red.mask_text(text[: cut + _MASK_MARGIN], secrets)[:cut] + "..."
    if mask and len(text) >= red.shortest_secret:
        return red.mask_text(text, secrets)
    return text


def _render_other(
    value: Any, kind: type, redactor: Redactor | None, secrets: EventSecrets | None
) -> str:
    if issubclass(kind, _DATETIME_TYPES):  # read like str(), as for the other scalars
        try:
            return _datetime_text(value, kind)
        except Exception as exc:
            return f"<{_safe_name(value)}: {_failure(exc)}>"
    node = capture_value(value, limits=_RENDER_LIMITS, redactor=redactor, secrets=secrets)
    return _format(node)


_CYCLE_TEXT = {"list": "[...]", "tuple": "(...)", "dict": "{...}", "set": "{...}"}


def _format(node: dict[str, Any]) -> str:
    """A captured value as Python-like text."""
    kind = node.get("type", "?")
    if node.get("redacted"):
        return REDACTED
    if "ref" in node:
        return _CYCLE_TEXT.get(kind, f"{_short(kind)}(...)")
    more = ", ..." if node.get("truncated") else ""
    if "value" in node:
        value = node["value"]
        if kind == "str":
            return repr(value + "...") if more else repr(value)
        return str(value)
    if "items" in node:
        inner = ", ".join(_format(item) for item in node["items"])
        if kind == "tuple":
            return f"({inner}{',' if len(node['items']) == 1 and not more else ''}{more})"
        if kind in ("set", "frozenset"):
            return f"{{{inner}{more}}}"
        return f"[{inner}{more}]"
    if "entries" in node:
        inner = ", ".join(f"{_format(k)}: {_format(v)}" for k, v in node["entries"])
        return f"{{{inner}{more}}}"
    if "fields" in node:
        if _is_mapping(node):
            inner = ", ".join(f"{k!r}: {_format(v)}" for k, v in node["fields"].items())
            return f"{{{inner}{more}}}"
        inner = ", ".join(f"{k}={_format(v)}" for k, v in node["fields"].items())
        return f"{_short(kind)}({inner}{more})"
    if "args" in node:
        args = node["args"]
        inner = ", ".join(_format(a) for a in args.get("items", ())) if "items" in args else ""
        return f"{_short(kind)}({inner})"
    if "notCaptured" in node:
        return f"<{kind}: {node['notCaptured']}>"
    return f"<{kind} at {node.get('id', '?')}>"


def _is_mapping(node: dict[str, Any]) -> bool:
    # A dict's node has "size" before "fields"; an object's has "size" only
    # after its fields, when they were cut.
    for key in node:
        if key == "size":
            return True
        if key == "fields":
            return False
    return False


def _short(kind: str) -> str:
    return kind.rsplit(".", 1)[-1]
