"""Worst-case cost of one evaluation: CPU time and peak memory per hit of hostile expressions.

Usage: python benchmarks/bench_budget.py [--slow]

Each expression is compiled once and evaluated as a condition would be on a
hit: the figure is the time of one evaluation (best of a few) and its peak
memory under tracemalloc (a separate run, so tracing does not inflate the
time). ``--slow`` adds the largest modular pow the old per-operation guards
allowed (about 15 s on this machine before the evaluation budget).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

from runtime_agent.sandbox import EvaluationFailure, compile_expression

EMOJI = "\\U0001F600"


def repeated(item: str, joiner: str, most: int = 1000) -> str:
    """Copies of ``item`` in ``len((...))``: as many as fit in 1000 characters, ``most`` at most."""
    head, tail = "len((", ",))"
    n = (1000 - len(head) - len(tail) + len(joiner)) // (len(item) + len(joiner))
    return head + joiner.join([item] * min(n, most)) + tail


ATTACKS: list[tuple[str, str]] = [
    ("modpow 4096-bit", "pow(3, 2**4095, 2**4096 - 1) > 0"),
    ("big-int division chain", repeated("(1<<99999)%((1<<50000)-1)", ",")),
    ("big-int multiplication chain", repeated("(1<<49999)*(3<<49990)", ",")),
    ("int to text chain", repeated("str(1<<13999)", ",")),
    ("shift chain", repeated("(1<<99999)>>1", ",")),
    ("string repeat, kept alive", repeated(f'"{EMOJI}"*999999', ",")),
    ("join amplification", repeated(f'("{EMOJI}"*999).join("a"*999)', ",")),
    ("replace amplification", repeated(f'("a"*999).replace("a","{EMOJI}"*999)', ",")),
    ("ascii() amplification", repeated(f'ascii("{EMOJI}"*99999)', ",")),
    ("list repeat, kept alive", repeated("[0]*99999", ",")),
    ("nested display", f'len(str([[[[[[["{EMOJI}"*9]*10]*10]*10]*10]*10]*10]))'),
    ("split amplification", repeated('("ab "*66666).split()', ",", most=6)),
]
SLOW = [("modpow 16384-bit (old limit)", "pow(3, 2**16383, 2**16384 - 1) > 0")]


def run(source: str) -> tuple[str, float, float]:
    """(outcome, seconds, peak MB) of one evaluation."""
    expr = compile_expression(source)
    outcome = ""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        try:
            value = expr.evaluate({}, {})
            outcome = f"value {type(value).__name__}"
        except EvaluationFailure as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[-70:]}"
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    tracemalloc.start()
    try:
        expr.evaluate({}, {})
    except EvaluationFailure:
        pass
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return outcome, best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="add the 15-second modular pow")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    print(f"  {'attack':32} {'chars':>5} {'ms/hit':>9} {'peak MB':>8}  outcome")
    for name, source in ATTACKS + (SLOW if args.slow else []):
        outcome, seconds, peak = run(source)
        print(f"  {name:32} {len(source):5} {seconds * 1e3:9.2f} {peak:8.1f}  {outcome}")


if __name__ == "__main__":
    main()
