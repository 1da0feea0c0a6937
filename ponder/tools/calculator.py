"""A safe arithmetic calculator tool: parses with ``ast`` and evaluates a whitelist, never ``eval``.

Supports + - * / // % ** (bounded), parentheses, unary minus, and the functions sqrt, abs, round,
floor, ceil, min, max, log, exp, plus the constants pi and e.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any

from ponder.tools.base import tool

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
    "log": math.log,
    "exp": math.exp,
}
_CONSTS = {"pi": math.pi, "e": math.e}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**100


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or is too large to evaluate."""


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    expr = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    expr = _THOUSANDS.sub("", expr)  # "1,000" -> "1000"; "max(1, 7)" keeps its comma
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"cannot parse {expression!r}: {exc.msg}") from None
    return _eval(tree.body)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {MAX_EXPONENT}")
        value = _BINOPS[type(node.op)](left, right)
        if isinstance(value, int) and abs(value) > MAX_MAGNITUDE:
            raise CalculatorError("result is too large")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    allowed = ", ".join(sorted([*_FUNCS, *_CONSTS]))
    raise CalculatorError(
        f"unsupported syntax {ast.dump(node)[:60]}; use numbers, + - * / // % ** and {allowed}"
    )


def _format(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


@tool
def calculator(
    expression: Annotated[str, "an arithmetic expression, e.g. '(48 / 2) + 48' or 'sqrt(2)*3'"],
) -> str:
    """Evaluate an arithmetic expression exactly and return the number."""
    return _format(evaluate(expression))
