"""A small, safe evaluator for KEDA's `scalingModifiers.formula` (no `eval`).

Supports what KEDA's docs use: numbers, trigger names, + - * / %, comparisons, && || !,
`cond ? a : b`, `a ?? b` (b when a is missing), parentheses, and min/max/abs/ceil/floor/round.
A trigger whose reading failed is *missing* (nil): arithmetic on it fails, `??` replaces it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Value = float | bool | None


class FormulaError(ValueError):
    """The formula cannot be parsed or evaluated; the message gives the position."""


_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>\?\?|&&|\|\||==|!=|<=|>=|[-+*/%()<>!?:,]))")
FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "ceil": math.ceil, "floor": math.floor, "round": round,
    "float": float, "int": int,  # expr-lang conversions; KEDA wraps every formula in float(...)
}
_BINARY = {  # operator: (left binding power, right binding power)
    "??": (1, 2), "||": (3, 4), "&&": (5, 6), "==": (7, 8), "!=": (7, 8), "<": (9, 10), "<=": (9, 10),
    ">": (9, 10), ">=": (9, 10), "+": (11, 12), "-": (11, 12), "*": (13, 14), "/": (13, 14), "%": (13, 14),
}


@dataclass(frozen=True)
class Node:
    kind: str  # num, name, unary, binary, ternary, call
    value: object = None
    args: tuple[Node, ...] = ()
    pos: int = 0


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].strip()[0]!r} at position {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, op: str | None = None) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        if op is not None and tok[1] != op:
            raise FormulaError(f"expected {op!r} at position {tok[2]}, found {tok[1] or 'end of formula'!r}")
        self.i += 1
        return tok

    def expression(self, min_power: int = 0) -> Node:
        left = self.prefix()
        while True:
            kind, op, pos = self.peek()
            if op == "?" and min_power == 0:
                self.take()
                then = self.expression()
                self.take(":")
                otherwise = self.expression()
                left = Node("ternary", None, (left, then, otherwise), pos)
                continue
            if kind != "op" or op not in _BINARY or _BINARY[op][0] < min_power:
                return left
            self.take()
            right = self.expression(_BINARY[op][1])
            left = Node("binary", op, (left, right), pos)

    def prefix(self) -> Node:
        kind, text, pos = self.take()
        if kind == "num":
            return Node("num", float(text), (), pos)
        if kind == "name":
            if text in ("true", "false"):
                return Node("num", text == "true", (), pos)
            if text == "nil":
                return Node("num", None, (), pos)
            if self.peek()[1] == "(":
                if text not in FUNCTIONS:
                    raise FormulaError(f"unknown function {text!r} at position {pos}")
                self.take("(")
                args = [self.expression()]
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.expression())
                self.take(")")
                return Node("call", text, tuple(args), pos)
            return Node("name", text, (), pos)
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text in ("-", "!", "+"):
            return Node("unary", text, (self.expression(15),), pos)
        raise FormulaError(f"unexpected {text or 'end of formula'!r} at position {pos}")


def parse(text: str) -> Node:
    parser = _Parser(text)
    node = parser.expression()
    kind, rest, pos = parser.peek()
    if kind != "end":
        raise FormulaError(f"unexpected {rest!r} at position {pos}")
    return node


def names(node: Node) -> set[str]:
    found = {str(node.value)} if node.kind == "name" else set()
    for arg in node.args:
        found |= names(arg)
    return found


def evaluate(node: Node, env: Mapping[str, float | None]) -> Value:
    if node.kind == "num":
        return node.value  # type: ignore[return-value]
    if node.kind == "name":
        if node.value not in env:
            raise FormulaError(f"unknown name {node.value!r} at position {node.pos}")
        return env[str(node.value)]
    if node.kind == "ternary":
        return evaluate(node.args[1] if _truthy(evaluate(node.args[0], env), node) else node.args[2], env)
    if node.kind == "binary" and node.value == "??":
        left = evaluate(node.args[0], env)
        return evaluate(node.args[1], env) if left is None else left
    if node.kind == "binary" and node.value in ("&&", "||"):
        left = _truthy(evaluate(node.args[0], env), node)
        if (node.value == "&&" and not left) or (node.value == "||" and left):
            return left
        return _truthy(evaluate(node.args[1], env), node)
    values = [evaluate(a, env) for a in node.args]
    if any(v is None for v in values):
        raise FormulaError(f"a trigger used at position {node.pos} has no value (use ?? to give a default)")
    nums = [float(v) for v in values]  # type: ignore[arg-type]
    if node.kind == "unary":
        return (not _truthy(values[0], node)) if node.value == "!" else (-nums[0] if node.value == "-" else nums[0])
    if node.kind == "call":
        return float(FUNCTIONS[str(node.value)](*nums))
    a, b = nums
    op = node.value
    if op in ("/", "%") and b == 0:
        raise FormulaError(f"division by zero at position {node.pos}")
    results: dict[object, Value] = {
        "+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None, "%": math.fmod(a, b) if b else None,
        "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
    }
    return results[op]


def _truthy(value: Value, node: Node) -> bool:
    if value is None:
        raise FormulaError(f"a trigger used at position {node.pos} has no value")
    return bool(value)


def compute(formula: str, env: Mapping[str, float | None]) -> float:
    """Evaluate to a number (booleans count as 1/0)."""
    result = evaluate(parse(formula), env)
    if result is None:
        raise FormulaError("formula produced no value")
    return float(result)
