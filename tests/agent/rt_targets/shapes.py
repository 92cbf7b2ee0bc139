"""Every code shape an action must work in; ``# L:name`` marks the lines tests use."""

from __future__ import annotations

import asyncio
import functools

MODULE_CONSTANT = 7  # L:module_level


class Request:
    def __init__(self, user_id: str, items: list[int]) -> None:
        self.user_id = user_id
        self.items = items


def plain(a: int, b: int) -> int:
    total = a * b  # L:plain_total

    # L:plain_blank
    return total + 1  # L:plain_return


class Service:
    rate = 2

    def method(self, x: int) -> int:
        doubled = x * self.rate  # L:method
        return doubled

    @staticmethod
    def static(x: int) -> int:
        return x + 100  # L:static

    @classmethod
    def klass(cls, x: int) -> int:
        return x * cls.rate  # L:classmethod

    def execute_trade(self, req: Request, price: float, qty: int) -> tuple[float, bool]:
        total = price * qty  # L:trade_total
        high_value = total > 10000  # L:trade_flag
        return total, high_value  # L:trade_return


def make_adder(n: int):
    def adder(x: int) -> int:
        return x + n  # L:closure

    return adder


EXISTING_ADDER = make_adder(10)


def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


@logged
def decorated(x: int) -> int:
    y = x - 1  # L:decorated
    return y


def generator(n: int):
    for i in range(n):  # L:gen_for
        yield i * i  # L:gen_yield


async def coroutine(x: int) -> int:
    await asyncio.sleep(0)
    result = x * 3  # L:coroutine
    return result


async def async_gen(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i + 1  # L:async_gen


def comprehension(values: list[int]) -> list[int]:
    squares = [v * v for v in values]  # L:comprehension
    return squares


def with_lambda(values: list[int]) -> list[int]:
    return sorted(values, key=lambda v: -v)  # L:lambda


def loop(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i  # L:loop_body
    return acc


def raises(x: int) -> int:
    if x < 0:
        raise ValueError("negative")  # L:raises
    return x


def try_except(x: int) -> str:
    try:
        value = 10 // x  # L:try_body
    except ZeroDivisionError:
        value = -1  # L:except_body
    finally:
        note = "done"  # L:finally_body
    return f"{value}:{note}"


def outer(x: int) -> int:
    def inner(y: int) -> int:
        return y * 2  # L:nested

    return inner(x) + 1


def slow(x: float) -> float:
    total = 0.0  # L:slow
    for _ in range(50):
        total += x
    return total


def secrets_here(password: str, user: str) -> str:
    token = "abc123"
    return f"{user}:{len(password)}:{len(token)}"  # L:secrets
