"""The evaluation state ``cost.Budget`` names: ``[steps, secrecy rule, bytes]``."""

from __future__ import annotations

import typing

from runtime_agent import cost
from runtime_agent.sandbox import compile_expression
from runtime_agent.secrecy import Secrecy


def test_a_budget_is_steps_then_secrecy_rule_then_bytes():
    assert typing.get_type_hints(cost.new_budget)["return"] == cost.Budget
    fresh = cost.new_budget()
    assert fresh == [cost.WORK_BUDGET, None, cost.MEMORY_BUDGET]
    assert fresh is not cost.new_budget()  # one per evaluation, never shared by accident


def test_an_evaluation_spends_steps_and_bytes_and_sets_its_rule_in_the_same_list():
    budget = cost.new_budget()
    expression = compile_expression("len(x * 1000) > 1")
    assert expression.evaluate({"x": "ab"}, {}, budget) is True
    steps, rule, left = budget
    assert 0 < steps < cost.WORK_BUDGET
    assert isinstance(rule, Secrecy)
    assert left <= cost.MEMORY_BUDGET - 2000  # the 2,000-character string it built
