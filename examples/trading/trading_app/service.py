"""Trade execution: price, total, high-value flag, fraud check.

The bug this demo is about: the risk limits were renamed in configuration
(``high_value_usd`` became ``high_value``), the lookup below still uses the old
key, and the KeyError is swallowed so a missing limit never blocks trading.
Every trade therefore passes the lenient fraud rules, and the service's
ordinary logs show nothing wrong.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger("trading")

RISK_LIMITS = {"high_value": 10_000.0, "max_quantity": 5_000}


@dataclass
class TradeRequest:
    user_id: str
    symbol: str
    quantity: int
    side: str = "buy"


@dataclass
class TradeResult:
    trade_id: int
    status: str
    total: float
    high_value: bool
    fraud_rules: str


@dataclass
class PriceFeed:
    prices: dict[str, float] = field(
        default_factory=lambda: {"ACME": 12.5, "GLOBEX": 87.0, "INITECH": 240.0, "HOOLI": 1250.0}
    )

    def quote(self, symbol: str) -> float:
        return self.prices[symbol]


class FraudCheck:
    """Strict rules for high-value trades, lenient ones otherwise."""

    def review(self, request: TradeRequest, total: float, high_value: bool) -> str:
        if high_value:
            return "strict"
        return "lenient"


class TradeExecutionService:
    def __init__(self, limits: dict[str, float] | None = None) -> None:
        self.prices = PriceFeed()
        self.fraud = FraudCheck()
        self.limits = dict(RISK_LIMITS if limits is None else limits)
        self._lock = threading.Lock()
        self._next_id = 1

    def execute_trade(self, request: TradeRequest) -> TradeResult:
        price = self.prices.quote(request.symbol)
        total = round(price * request.quantity, 2)
        high_value = False
        try:
            high_value = total > self.limits["high_value_usd"]
        except KeyError:
            log.debug("no high-value limit configured")
        rules = self.fraud.review(request, total, high_value)
        with self._lock:
            trade_id = self._next_id
            self._next_id += 1
        log.info(
            "trade %s executed: %s %s x%s",
            trade_id,
            request.user_id,
            request.symbol,
            request.quantity,
        )
        return TradeResult(trade_id, "executed", total, high_value, rules)
