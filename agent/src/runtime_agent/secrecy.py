"""What an expression may read: secrets are opaque to every expression.

Conditions, log fields, watches and metrics all run in the sandbox, and all
follow the one rule decided here, from the engine's ``Redactor``, when an
expression is compiled (``Secrecy``).

What is secret
    - a value read under a sensitive name (``Redactor.is_sensitive``): a
      variable, an attribute, a dict key (str or bytes, a constant or computed
      at run time: ``d['pass' + 'word']``, ``d.get('PASSWORD'.lower())``), a
      named tuple field (``login[1]``);
    - a value whose text the Redactor's patterns mask (a bearer token, a JWT,
      a key, a card number, also as an int), whatever its name, once it
      flows into an operation. A value shown as it is (the whole expression,
      ``x.attr``, presence tests) is masked by whoever renders it instead.

What an expression may do with a secret
    Test its presence: ``x is None``, ``x is not None``, its truth (``if x``,
    ``not x``, ``x and y``, ``bool(x)``), and pass it along (``a if c else b``,
    ``and``/``or``, a display: ``[x]`` is itself a secret). Anything else
    (reading into it, ``[]``, slices, comparisons, ``len``, ``str``, ``int``,
    ``ord``, f-strings, ``hash``, iteration, arithmetic, methods, attributes)
    raises ``RedactedRead`` naming the secret's name, never its value.

Containers holding a secret
    A walk over a container (``values()``, ``items()``, ``list(d)``, ``==``
    between containers, ``in`` a view, ``str``/``repr``/f-string,
    ``sorted``/``min``/``max``/``sum``/``any``/``all``/``tuple``...) is
    refused when it meets a sensitive key or a named tuple's sensitive field,
    at any depth it walks. ``len(d)``, ``'password' in d`` and a key read
    by name (``d['password'] is None``) are answered. Text made from a whole
    container (``str(xs)``, ``', '.join(xs)``, ``max(xs)``) is checked
    against the patterns like any read.

Results
    A result that is a secret reaches no one: a log field or a watch shows the
    redaction marker, a condition takes its truth, a metric fails (its number
    would be the secret).

Cost: names, attributes and constant keys are decided at compile time, so an
expression over ordinary names pays only the pattern check of the text it
computes with (nothing for numbers, a length test for short strings). The
pattern check of longer text is charged to the evaluation's work budget by
length before it runs (``cost.screen``), so reading a host string of
megabytes fails the evaluation at once.
"""

from __future__ import annotations

import gc
import types
from typing import Any, Final

from runtime_agent import cost
from runtime_agent.redact import Redactor
from runtime_agent.safeops import (
    K_MAP,
    K_SEQ,
    K_VIEW,
    Secret,
    charge,
    inherits,
    redacted_read,
    static_lookup,
    tname,
)

__all__ = ["CARD_FLOOR", "PLAIN_IDS", "Secrecy"]

#: Below this an int has fewer than 13 digits, so it cannot be a card number;
#: from the ceiling up it has more than 19.
CARD_FLOOR: Final = 10**12
_CARD_CEILING: Final = 10**19
#: Types whose values have no text of their own to take apart (containers
#: are walked where they are used instead).
PLAIN_IDS: Final = frozenset(
    map(
        id,
        (float, bool, complex, type(None), list, tuple, dict, set, frozenset, range),
    )
)
# Code is not data: a module, class or function under a sensitive name
# (``import auth``) is read as usual; what is read from it is named itself.
_CODE_IDS: Final = frozenset(
    map(
        id,
        (
            types.ModuleType,
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodType,
            type,
        ),
    )
)
_STR_COPY: Final = str.__str__
_STR_LEN: Final = str.__len__
_BYTES_LEN: Final = bytes.__len__
_BYTEARRAY_LEN: Final = bytearray.__len__
#: What a card-sized int costs to check: its 19 digits at most.
_CARD_DIGITS: Final = 19
_INT_COPY: Final = int.__index__
_DKEYS: Final = dict.keys


class Secrecy:
    """The secrecy rule of one ``Redactor``, as the sandbox applies it.

    Read-only after construction and shared by every evaluation of the
    expressions compiled with it.
    """

    __slots__ = ("_mask", "_sensitive", "shortest")

    def __init__(self, redactor: Redactor) -> None:
        self._sensitive = redactor.is_sensitive
        self._mask = redactor.mask_text
        #: Text shorter than this never looks like a secret.
        self.shortest: int = redactor.shortest_secret

    # -- names ---------------------------------------------------------------

    def is_sensitive(self, name: str) -> bool:
        """Whether a variable or attribute of this name holds a secret."""
        return self._sensitive(name)

    def key_name(self, key: Any) -> str | None:
        """The name under which a dict key marks its value secret, or None.

        str keys (a str subclass as its plain text) and bytes keys (read as
        latin-1, as capture reads them) are names; anything else is not.
        """
        kind = type(key)
        if kind is str:
            text = key
        elif kind is bytes or kind is bytearray:
            text = key.decode("latin-1")
        elif inherits(kind, str):
            text = _STR_COPY(key)
        else:
            return None
        return text if self._sensitive(text) else None

    # -- values --------------------------------------------------------------

    def hide(self, name: str, value: Any) -> Any:
        """``value`` as read under the sensitive ``name``: a Secret, except
        None, True and False (their identity is all a presence test reads)
        and code (modules, classes, functions)."""
        if value is None or value is True or value is False:
            return value
        kind = type(value)
        if id(kind) in _CODE_IDS or inherits(kind, type):
            return value
        return Secret(name, value)

    def looks_secret(self, value: Any, B: list[Any] | None = None, label: str = "") -> bool:
        """Whether the Redactor's patterns would mask ``value``'s text.

        Text (str, bytes, bytearray and their subclasses, read through the
        builtin's C code) and ints that could be card numbers; nothing else
        has text of its own that an expression could take apart. With an
        evaluation's budget ``B``, the check is charged to it by length
        before any text is copied or scanned (``cost.screen``): a host
        string of megabytes fails the evaluation instead of holding the GIL
        for seconds.
        """
        kind = type(value)
        if kind is bool or value is None:
            return False
        if id(kind) in PLAIN_IDS:
            return False
        if kind is str or inherits(kind, str):
            size = _STR_LEN(value)
        elif inherits(kind, int):
            n = abs(_INT_COPY(value))
            if not CARD_FLOOR <= n < _CARD_CEILING:
                return False
            size = _CARD_DIGITS
        elif inherits(kind, bytes):
            size = _BYTES_LEN(value)
        elif inherits(kind, bytearray):
            size = _BYTEARRAY_LEN(value)
        else:
            return False
        if size < self.shortest:
            return False
        if B is not None:
            charge(B, cost.screen(size), f"{label} (checked for secrets, by length)")
        if kind is str:
            text = value
        elif inherits(kind, str):
            text = _STR_COPY(value)
        elif inherits(kind, int):
            text = str(abs(_INT_COPY(value)))
        elif inherits(kind, bytes):
            text = bytes.decode(value, "latin-1")
        else:
            text = bytearray.decode(value, "latin-1")
        masked = self._mask(text)
        return masked is not text and masked != text

    def screen(self, value: Any, label: str, B: list[Any] | None = None) -> Any:
        """``value``, or a Secret named ``label`` when its text looks like a
        secret; the check is charged to the evaluation's budget ``B``."""
        if self.looks_secret(value, B, label):
            return Secret(label, value)
        return value

    # -- containers ----------------------------------------------------------

    def check_container(self, value: Any, kind: int, base: type, where: str) -> None:
        """Raise RedactedRead if walking ``value`` (a builtin container or a
        subclass of one, of ``kind``) would reach a value under a sensitive
        key: a dict's own keys, the dict behind a view, a named tuple's
        fields. Elements are not entered: the walks that go
        deeper call this for every container they meet."""
        if kind == K_MAP:
            self._check_keys(value, tname(type(value)), where)
        elif kind == K_VIEW:
            for owner in gc.get_referents(value):  # the view's dict, read by C code
                if inherits(type(owner), dict):
                    self._check_keys(owner, tname(type(owner)), where)
        elif kind == K_SEQ and type(value) is not base:
            name = self.field_name(type(value), None)
            if name is not None:
                raise redacted_read(name, where, f" (a field of {tname(type(value))})")

    def _check_keys(self, d: Any, label: str, where: str) -> None:
        sensitive = self.key_name
        for key in _DKEYS(d):
            name = sensitive(key)
            if name is not None:
                raise redacted_read(name, where, f" (a key of the {label} it walks)")

    def field_name(self, tp: type, index: Any) -> str | None:
        """The sensitive field name of a named tuple type at ``index`` (any
        field when ``index`` is None), or None. Fields are read from the
        class's ``_fields`` tuple, statically."""
        fields = static_lookup(tp, "_fields")
        if type(fields) is not tuple:
            return None
        if index is None:
            for name in fields:
                if type(name) is str and self._sensitive(name):
                    return name
            return None
        if type(index) is not int or not -len(fields) <= index < len(fields):
            return None
        name = fields[index]
        return name if type(name) is str and self._sensitive(name) else None
