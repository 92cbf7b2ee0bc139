"""`make demo`: the trading-bug investigation, driven through the agent engine.

A trading service executes a stream of trades in this process while the
investigation runs against it live, with no restart:

1. a log at the entry of ``execute_trade`` (user, symbol, quantity, price, total);
2. a conditional snapshot before the fraud check, ``total > 10000``, max 3 hits,
   whose values show the high-value flag is still false;
3. a counter and a duration metric on the same code;
4. every action removed, the service's results unchanged throughout.

Exits 0 only when every step saw what it expected.
"""

from __future__ import annotations

import inspect
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "trading"))

from runtime_agent import Engine  # noqa: E402
from trading_app.service import TradeExecutionService, TradeRequest  # noqa: E402

SYMBOLS = ["ACME", "GLOBEX", "INITECH", "HOOLI"]


def line_of(text: str) -> int:
    source, start = inspect.getsourcelines(TradeExecutionService.execute_trade)
    for offset, line in enumerate(source):
        if text in line:
            return start + offset
    raise LookupError(text)


def traffic(service: TradeExecutionService, stop: threading.Event) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        request = TradeRequest(
            f"user-{rng.randint(1, 40)}", rng.choice(SYMBOLS), rng.choice([1, 5, 20, 80, 200])
        )
        service.execute_trade(request)
        time.sleep(0.002)


def step(title: str) -> None:
    print(f"\n== {title}")


def wait_for(engine: Engine, action_id: str, hits: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.status(action_id).hits < hits and time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> int:
    service = TradeExecutionService()
    stop = threading.Event()
    worker = threading.Thread(target=traffic, args=(service, stop), daemon=True)
    worker.start()
    engine = Engine()
    failures: list[str] = []
    try:
        print(f"runtime-agent engine on Python {sys.version.split()[0]}, core: {engine.core}")
        entry = f"trading_app/service.py:{line_of('price = self.prices.quote')}"
        step(f"1. log at the entry of execute_trade ({entry})")
        log = engine.add_log(
            entry.rsplit(":", 1)[0] + f":{line_of('total = round(')}",
            "user={request.user_id} symbol={request.symbol} qty={request.quantity} price={price}",
            max_hits=5,
        )
        print(f"   -> {log.state} at {log.file}:{log.line} in {log.function}")
        wait_for(engine, log.id, 5)
        lines = [e["message"] for e in engine.drain() if e["type"] == "log"]
        for text in lines:
            print(f"   log: {text}")
        if len(lines) != 5:
            failures.append(f"expected 5 log lines, got {len(lines)}")

        where = f"trading_app/service.py:{line_of('rules = self.fraud.review')}"
        step(f"2. snapshot before the fraud check when total > 10000 ({where}, max 3 hits)")
        snap = engine.add_snapshot(
            where, condition="total > 10000", max_hits=3, watch=["high_value", "self.limits"]
        )
        print(f"   -> {snap.state} at line {snap.line}")
        wait_for(engine, snap.id, 3)
        shots = [e for e in engine.drain() if e["type"] == "snapshot"]
        for shot in shots:
            total = shot["locals"]["total"]["value"]
            flag = shot["watch"]["high_value"]["value"]
            limits = shot["watch"]["self.limits"]
            print(f"   snapshot: total={total} high_value={flag} limits={limits}")
            if not (total > 10000 and flag is False):
                failures.append(f"snapshot did not show the bug: total={total} flag={flag}")
        if len(shots) != 3:
            failures.append(f"expected 3 snapshots, got {len(shots)}")
        print(
            "   => trades over $10,000 keep high_value=False: the limit key "
            "'high_value_usd' is not in the limits, and the KeyError is swallowed"
        )

        step("3. a counter and the duration of execute_trade")
        counter = engine.add_counter(where, condition="total > 10000")
        duration = engine.add_duration("trading_app.service:TradeExecutionService.execute_trade")
        time.sleep(1.0)
        engine.flush()
        for event in engine.drain():
            if event["type"] == "metric" and event["action"] == counter.id:
                print(f"   high-value trades in 1 s: {event['count']}")
            if event["type"] == "metric" and event["action"] == duration.id:
                print(
                    f"   execute_trade: {event['count']} calls, p50 {event['p50']:.3f} ms, "
                    f"p99 {event['p99']:.3f} ms"
                )

        step("4. remove every action")
        removed = engine.remove_all()
        print(f"   removed {removed} actions; the service runs on untouched")
    finally:
        stop.set()
        worker.join(timeout=5)
        engine.close()
    if failures:
        print("\nDEMO FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nDemo passed: every step saw what it expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
