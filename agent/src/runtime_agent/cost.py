"""What one evaluation of an expression may spend, and what each operation costs.

An evaluation gets one budget of work and memory (``new_budget``): a
three-element list, ``[steps, secrecy rule, bytes]``, that every operation draws from
*before* it runs (``safeops.charge`` and ``safeops.produce`` raise
``BudgetExceeded`` when it would go below zero). The functions here only
compute costs from operand sizes; they never look at values.

A step is about 50 ns of the slowest builtin work of its kind, measured with
CPython 3.12 on a shared 2-core machine (``benchmarks/bench_budget.py``): the
work budget, ``WORK_BUDGET`` steps, is about half a millisecond, and a few
fixed costs per node (calls, checks) stay outside it. ``MEMORY_BUDGET`` bounds
the sum of the sizes of everything an evaluation builds (strings, bytes, big
ints, containers), not only what is alive at the end: 4 MiB, which copying
costs about half a millisecond more.

Big-int arithmetic is charged by operand size in 30-bit digits: schoolbook
below CPython's Karatsuba cutoff (70 digits) and Karatsuba above it;
division by (quotient digits x divisor digits); modular pow by exponent bits
x modulus digits squared; conversion to decimal text, or to a ``Decimal``,
quadratically. The
constants are upper bounds of what was measured, rounded up. Checking text
for secret patterns is charged a step a character (``screen``).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

#: One evaluation's state, ``[steps, secrecy rule, bytes]``: ``B[0]`` the work
#: steps left (int), ``B[1]`` the ``secrecy.Secrecy`` rule the evaluation runs
#: under (None until it sets its own), ``B[2]`` the bytes of results left (int).
#: A list, not a class, because the sandbox's hot paths index it with constant
#: subscripts and update it in place (``B[0] -= n``); no ``list[...]`` form can
#: type its slots one by one, so the alias names the shape and this comment
#: states it. Every ``B`` parameter of ``safeops`` and ``sandbox`` is one.
Budget: TypeAlias = list[Any]

#: Work units per evaluation: one per AST node, one per element iterated or
#: checked, and the cost of sized operations (below) in the same unit.
WORK_BUDGET: Final = 10_000
#: Bytes of results per evaluation, summed over every operation.
MEMORY_BUDGET: Final = 4 << 20
#: Nanoseconds of work one step stands for.
NS_PER_STEP: Final = 50
#: Bytes reserved per AST node at compilation: what a node's inline fast path
#: (small numbers, displays, a field's text) can build without being charged.
NODE_BYTES: Final = 128
#: Bytes reserved per call of a str method, whose inline path (receivers
#: shorter than ``INLINE_TEXT``) is not charged: a split of 255 characters.
INLINE_METHOD_BYTES: Final = 8192
#: Longest receiver a str method is called on inline (without charging).
INLINE_TEXT: Final = 256

_DIGIT_BITS: Final = 30
_KARATSUBA_DIGITS: Final = 70

# Object sizes on a 64-bit CPython, rounded up.
_STR_HEADER: Final = 56
_BYTES_HEADER: Final = 40
_INT_HEADER: Final = 32
_SEQ_HEADER: Final = 64
_POINTER: Final = 8
_HASHED_SLOT: Final = 64  # a set or dict entry, table overhead included


def new_budget() -> Budget:
    """A fresh ``[steps, secrecy rule, bytes]`` budget for one evaluation (or
    one hit's evaluations); each evaluation sets its own rule in the middle."""
    return [WORK_BUDGET, None, MEMORY_BUDGET]


def _steps(ns: float) -> int:
    return int(ns) // NS_PER_STEP + 1


def _digits(bits: int) -> int:
    return bits // _DIGIT_BITS + 1


# -- big ints (sizes in bits) ---------------------------------------------------


def multiply(a_bits: int, b_bits: int) -> int:
    """Steps of ``a * b``."""
    small, big = sorted((_digits(a_bits), _digits(b_bits)))
    if small < _KARATSUBA_DIGITS:
        return _steps(1.5 * small * big)
    # Karatsuba on slices of the larger operand as long as the smaller one.
    return _steps(7.0 * big * small**0.585)


def divide(a_bits: int, b_bits: int) -> int:
    """Steps of ``a // b``, ``a % b`` or ``divmod(a, b)``."""
    da, db = _digits(a_bits), _digits(b_bits)
    if da < db:
        return 1
    return _steps(2.6 * (da - db + 1) * db + 5.0 * da)


def linear(bits: int) -> int:
    """Steps of an operation that reads or writes each digit once (+, -, shifts, &, |, ^)."""
    return _steps(5.0 * _digits(bits))


def power(result_bits: int, exponent: int) -> int:
    """Steps of an exact ``base ** exponent`` of ``result_bits`` bits (exponent >= 0).

    Square and multiply: the last squaring, of half the result, dominates;
    the earlier ones add half as much again, and squaring is cheaper than a
    product of two numbers (measured: the product of the two halves).
    """
    half = result_bits // 2
    return multiply(half, half) + exponent.bit_length()


def modular_power(exponent_bits: int, modulus_bits: int) -> int:
    """Steps of ``pow(base, exponent, modulus)``: a squaring and a reduction per bit
    (plus a modular inverse for a negative exponent, about one reduction)."""
    dm = _digits(modulus_bits)
    return _steps((exponent_bits + 2) * (2.5 * dm * dm + 400.0))


def int_to_text(bits: int) -> int:
    """Steps of converting an int to decimal text (quadratic in CPython)."""
    d = _digits(bits)
    return _steps(1.5 * d * d)


def int_to_decimal(bits: int) -> int:
    """Steps of converting an int to a ``Decimal`` (by arithmetic or a comparison
    with one): base 2**30 to base 10**19, quadratic, as fast as ``int_to_text``
    (measured: 0.16 ms at 10k bits, 17 ms at 100k bits)."""
    return int_to_text(bits)


def text_to_int(chars: int) -> int:
    """Steps of parsing ``chars`` decimal digits into an int (quadratic in CPython)."""
    return _steps(0.007 * chars * chars + 5.0 * chars)


def screen(chars: int) -> int:
    """Steps of checking ``chars`` characters of text against the secret patterns.

    One step a character: ordinary text (JSON, SQL, HTML, log lines) costs
    20-100 ns a character (``Redactor.mask_text``). Text made only of labels
    (``"token: x " * n``) or digit groups costs up to about 1 us a character,
    so an evaluation that spends its whole budget checking such text takes
    about 10 ms: the one exception to a step's 50 ns, and still bounded.
    """
    return chars + 1


def int_bytes(bits: int) -> int:
    """Bytes of an int of ``bits`` bits."""
    return _INT_HEADER + bits // 7


# -- text and containers (sizes in characters and elements) -----------------------


def text_bytes(chars: int, wide: bool) -> int:
    """Bytes of a str of ``chars`` characters (``wide``: not all ASCII, 4 bytes each at most)."""
    return _STR_HEADER + (chars << 2 if wide else chars)


def bytes_bytes(length: int) -> int:
    """Bytes of a bytes or bytearray of ``length``."""
    return _BYTES_HEADER + length


def sequence_bytes(items: int) -> int:
    """Bytes of a list or tuple of ``items`` (the elements themselves are shared)."""
    return _SEQ_HEADER + _POINTER * items


def hashed_bytes(items: int) -> int:
    """Bytes of a set, frozenset or dict of ``items``."""
    return _SEQ_HEADER + _HASHED_SLOT * items


def parts_bytes(parts: int, chars: int, wide: bool) -> int:
    """Bytes of a list of ``parts`` strings holding ``chars`` characters in all (split)."""
    return sequence_bytes(parts) + parts * _STR_HEADER + (chars << 2 if wide else chars)


__all__ = [
    "INLINE_METHOD_BYTES",
    "INLINE_TEXT",
    "MEMORY_BUDGET",
    "NODE_BYTES",
    "NS_PER_STEP",
    "WORK_BUDGET",
    "Budget",
    "bytes_bytes",
    "divide",
    "hashed_bytes",
    "int_bytes",
    "int_to_decimal",
    "int_to_text",
    "linear",
    "modular_power",
    "multiply",
    "new_budget",
    "parts_bytes",
    "power",
    "screen",
    "sequence_bytes",
    "text_bytes",
    "text_to_int",
]
