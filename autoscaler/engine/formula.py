"""KEDA's `scalingModifiers.formula`, compiled and evaluated safely (no `eval`).

KEDA compiles the formula with expr-lang (github.com/expr-lang/expr); this is the subset of that
language a formula over trigger values uses, with expr-lang's grammar and precedences:

- numbers as expr-lang reads them: `12`, `1_000`, `0x1f`, `0o17`, `0b101`, `2.5`, `1e3`; an
  integer beyond int64 or a float beyond float64 (`1e999`) is an invalid literal, as there;
- trigger names, `true`, `false`, `nil`, strings (`"x"`, only for comparisons);
- unary `-` `+` `!` `not`; binary `??` (tightest, and not mixable with other operators without
  parentheses), `**` `^` (power, right-associative), `*` `/` `%`, `+` `-`, comparisons, `&&`
  `and`, `||` `or`; `cond ? a : b` and `cond ?: b`; calls to min, max, abs, ceil, floor, round,
  int, float.

`compile_formula()` is what `surge validate` and the engine both use: syntax, known names and
functions, literals, and limits — at most `MAX_LENGTH` characters, `MAX_NODES` nodes (expr-lang's
own default limit) and `MAX_DEPTH` levels of nesting (surge's: evaluation is recursive) — and it
folds constant parts, so `9**9**9` (which overflows) is refused before it runs. At run time every
failure (a missing trigger value, division by zero, overflow, a non-finite result) is a
`FormulaError`, which the engine reports as a scaler error; nothing else escapes `compute()`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Value = float | bool | str | None

MAX_LENGTH = 10_000
MAX_NODES = 10_000
MAX_DEPTH = 100


class FormulaError(ValueError):
    """The formula cannot be compiled or evaluated; the message gives the position."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?)"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\?\?|\?:|\*\*|&&|\|\||==|!=|<=|>=|[-+*/%^()<>!?:,\[\]{}#]))")


def _int(name: str) -> Callable[[float], float]:
    def convert(x: float) -> float:
        return float(int(x))
    convert.__name__ = name
    return convert


FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "ceil": math.ceil, "floor": math.floor, "round": round,
    "int": _int("int"), "float": float,  # expr-lang conversions; KEDA wraps every formula in float(...)
}
# expr-lang builtins over an array: (array) → number
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "mean": lambda xs: math.fsum(xs) / len(xs) if xs else 0.0,
    "median": lambda xs: (sorted(xs)[len(xs) // 2] if len(xs) % 2 else
                          (sorted(xs)[len(xs) // 2 - 1] + sorted(xs)[len(xs) // 2]) / 2) if xs else 0.0,
    "len": lambda xs: float(len(xs)),
}
# (array, {predicate over #}) → a count, a boolean or an array
PREDICATES = ("count", "all", "any", "none", "one", "filter", "map")
# expr-lang's precedences (parser/operator/operator.go) and associativity
_BINARY: dict[str, tuple[int, bool]] = {
    "||": (10, False), "or": (10, False), "&&": (15, False), "and": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False), "<=": (20, False), ">=": (20, False),
    "+": (30, False), "-": (30, False), "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True), "??": (500, False),
}
_UNARY = {"!": 50, "not": 50, "-": 90, "+": 90}
_WORD_OPS = {"and", "or", "not"}


@dataclass(frozen=True)
class Node:
    kind: str  # num, str, name, unary, binary, ternary, call
    value: object = None
    args: tuple[Node, ...] = ()
    pos: int = 0
    depth: int = 1


def _number(text: str, pos: int) -> float:
    clean = text.replace("_", "")
    lower = clean.lower()
    try:
        if lower.startswith(("0x", "0o", "0b")) or not any(c in lower for c in ".e"):
            integer = int(clean, 0) if lower.startswith(("0x", "0o", "0b")) else int(clean)
            number = float(integer) if -(2**63) <= integer < 2**63 else math.inf
        else:
            number = float(clean)
    except ValueError:
        raise FormulaError(f"invalid number literal {text!r} at position {pos}") from None
    if math.isinf(number):
        raise FormulaError(f"invalid number literal {text!r} at position {pos}: out of range (int64, float64)")
    return number


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].strip()[0]!r} at position {pos}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "name" and value in _WORD_OPS:
            kind = "op"
        tokens.append((kind, value, match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    """expr-lang's precedence climbing (parser.parseExpression), with node and depth limits."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.nodes = 0
        self.level = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, op: str | None = None) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        if op is not None and tok[1] != op:
            raise FormulaError(f"expected {op!r} at position {tok[2]}, found {tok[1] or 'end of formula'!r}")
        self.i += 1
        return tok

    def node(self, kind: str, value: object, args: tuple[Node, ...], pos: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} nodes")
        depth = 1 + max((a.depth for a in args), default=0)
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula nests deeper than {MAX_DEPTH} levels at position {pos}")
        return Node(kind, value, args, pos, depth)

    def expression(self, precedence: int = 0) -> Node:
        self.level += 1
        if self.level > MAX_DEPTH:
            raise FormulaError(f"formula nests deeper than {MAX_DEPTH} levels at position {self.peek()[2]}")
        left = self.prefix()
        previous = ""
        while True:
            kind, op, pos = self.peek()
            if kind != "op" or op not in _BINARY or _BINARY[op][0] < precedence:
                break
            self.take()
            if previous == "??" and op != "??":
                raise FormulaError(f"operator {op!r} at position {pos} and ?? cannot be mixed; add parentheses")
            power, right_assoc = _BINARY[op]
            right = self.expression(power if right_assoc else power + 1)
            left = self.node("binary", {"and": "&&", "or": "||", "^": "**"}.get(op, op), (left, right), pos)
            previous = op
        if precedence == 0:
            while self.peek()[1] in ("?", "?:"):
                _, op, pos = self.take()
                if op == "?:":
                    then, otherwise = left, self.expression()
                else:
                    then = self.expression()
                    self.take(":")
                    otherwise = self.expression()
                left = self.node("ternary", None, (left, then, otherwise), pos)
        self.level -= 1
        return left

    def prefix(self) -> Node:
        kind, text, pos = self.take()
        if kind == "num":
            return self.node("num", _number(text, pos), (), pos)
        if kind == "str":
            return self.node("str", text[1:-1], (), pos)
        if kind == "name":
            if text in ("true", "false"):
                return self.node("num", text == "true", (), pos)
            if text == "nil":
                return self.node("num", None, (), pos)
            if self.peek()[1] == "(":
                known = {*FUNCTIONS, *AGGREGATES, *PREDICATES}
                if text not in known:
                    raise FormulaError(f"unknown function {text!r} at position {pos} (known: {sorted(known)})")
                self.take("(")
                args = [self.expression()]
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.closure() if text in PREDICATES and len(args) == 1 else self.expression())
                self.take(")")
                if text in PREDICATES and (len(args) != 2 or args[1].kind != "closure"):
                    raise FormulaError(f"{text}() at position {pos} takes an array and a predicate such as {{# > 1}}")
                if text in AGGREGATES and len(args) != 1:
                    raise FormulaError(f"{text}() at position {pos} takes one array")
                return self.node("call", text, tuple(args), pos)
            return self.node("name", text, (), pos)
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text == "[":
            items: list[Node] = []
            while self.peek()[1] != "]":
                items.append(self.expression())
                if self.peek()[1] != ",":
                    break
                self.take(",")
            self.take("]")
            return self.node("array", None, tuple(items), pos)
        if text == "#":
            return self.node("pointer", None, (), pos)
        if kind == "op" and text in _UNARY:
            operand = self.expression(_UNARY[text])
            return self.node("unary", "!" if text == "not" else text, (operand,), pos)
        raise FormulaError(f"unexpected {text or 'end of formula'!r} at position {pos}")


    def closure(self) -> Node:
        """A predicate `{ expression over # }`: the second argument of count/all/any/none/one/filter/map."""
        _, _, pos = self.take("{")
        body = self.expression()
        self.take("}")
        return self.node("closure", None, (body,), pos)


def parse(text: str) -> Node:
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text)} characters long, over the limit of {MAX_LENGTH}")
    parser = _Parser(text)
    try:
        node = parser.expression()
    except RecursionError:  # only if the caller is already deep: the depth limit comes first
        raise FormulaError(f"formula nests too deeply (limit {MAX_DEPTH})") from None
    kind, rest, pos = parser.peek()
    if kind != "end":
        raise FormulaError(f"unexpected {rest!r} at position {pos}")
    return node


def names(node: Node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "name":
            found.add(str(n.value))
        stack.extend(n.args)
    return found


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Node:
    tree = parse(text)
    if _fold(tree):
        evaluate(tree, {})
    return tree


def compile_formula(text: str, known: Collection[str] | None = None) -> Node:
    """The formula's tree, or a FormulaError: syntax, functions, literals, limits, names not in
    `known` (when given), and constant parts that cannot be computed (overflow, division by zero)."""
    tree = _compiled(text)
    if known is not None:
        unknown = sorted(names(tree) - set(known))
        if unknown:
            raise FormulaError(f"refers to {unknown}, which are not trigger names (named triggers: {sorted(known)})")
    return tree


def _fold(node: Node) -> bool:
    """Whether `node` is constant; the largest constant parts are evaluated once, so that what can
    never run is an error now (depth is bounded by MAX_DEPTH, so the recursion is too)."""
    constant = [_fold(a) for a in node.args]
    if node.kind in ("name", "pointer", "closure"):
        return False
    if all(constant):
        return True
    if node.kind == "binary" and node.value in ("/", "%") and constant[1] and evaluate(node.args[1], {}) == 0:
        raise FormulaError(f"division by zero at position {node.pos}")
    for arg, const in zip(node.args, constant, strict=True):
        if const:
            evaluate(arg, {})
    return False


def evaluate(node: Node, env: Mapping[str, float | None]) -> Value:
    try:
        return _evaluate(node, env)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError) as exc:
        if isinstance(exc, FormulaError):
            raise
        raise FormulaError(f"cannot compute at position {node.pos}: {exc}") from None


def _evaluate(node: Node, env: Mapping[str, float | None]) -> Value:
    if node.kind in ("num", "str"):
        return node.value  # type: ignore[return-value]
    if node.kind == "name":
        if node.value not in env:
            raise FormulaError(f"unknown name {node.value!r} at position {node.pos}")
        return env[str(node.value)]
    if node.kind == "pointer":
        if "#" not in env:
            raise FormulaError(f"'#' outside a predicate at position {node.pos}")
        return env["#"]
    if node.kind == "array":
        return [_evaluate(a, env) for a in node.args]  # type: ignore[return-value]
    if node.kind == "call" and (node.value in PREDICATES or node.value in AGGREGATES):
        return _over_array(node, env)
    if node.kind == "ternary":
        return _evaluate(node.args[1] if _truthy(_evaluate(node.args[0], env), node) else node.args[2], env)
    if node.kind == "binary" and node.value == "??":
        left = _evaluate(node.args[0], env)
        return _evaluate(node.args[1], env) if left is None else left
    if node.kind == "binary" and node.value in ("&&", "||"):
        left = _truthy(_evaluate(node.args[0], env), node)
        if (node.value == "&&" and not left) or (node.value == "||" and left):
            return left
        return _truthy(_evaluate(node.args[1], env), node)
    values = [_evaluate(a, env) for a in node.args]
    if node.kind == "call" and node.value in ("min", "max") and len(values) == 1 and isinstance(values[0], list):
        values = values[0]  # expr-lang's min/max also take one array
        if not values:
            raise FormulaError(f"{node.value}() of an empty array at position {node.pos}")
    if any(isinstance(v, list) for v in values):
        raise FormulaError(f"an array used as a number at position {node.pos}")
    if any(v is None for v in values):
        raise FormulaError(f"a trigger used at position {node.pos} has no value (use ?? to give a default)")
    if node.kind == "binary" and node.value in ("==", "!=") and any(isinstance(v, str) for v in values):
        return (values[0] == values[1]) == (node.value == "==")
    if any(isinstance(v, str) for v in values):
        raise FormulaError(f"a string used as a number at position {node.pos}")
    nums = [float(v) for v in values]  # type: ignore[arg-type]
    if node.kind == "unary":
        return (not _truthy(values[0], node)) if node.value == "!" else (-nums[0] if node.value == "-" else nums[0])
    if node.kind == "call":
        return _finite(float(FUNCTIONS[str(node.value)](*nums)), node)
    a, b = nums
    op = node.value
    if op in ("/", "%") and b == 0:
        raise FormulaError(f"division by zero at position {node.pos}")
    if op == "**":
        try:
            return _finite(math.pow(a, b), node)
        except OverflowError:
            raise FormulaError(f"{a:g} ** {b:g} at position {node.pos} overflows") from None
    result: Value = _ARITHMETIC[str(op)](a, b)
    return _finite(result, node) if isinstance(result, float) else result


_ARITHMETIC: dict[str, Callable[[float, float], Value]] = {  # only the one asked for is computed
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "%": math.fmod, "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _over_array(node: Node, env: Mapping[str, Any]) -> Value:
    items = _evaluate(node.args[0], env)
    if not isinstance(items, list):
        raise FormulaError(f"{node.value}() at position {node.pos} needs an array, such as [a, b]")
    name = str(node.value)
    if name in AGGREGATES:
        if any(v is None or isinstance(v, str | list) for v in items):
            raise FormulaError(f"{name}() at position {node.pos}: every element must be a number")
        return _finite(AGGREGATES[name]([float(v) for v in items]), node)
    body = node.args[1].args[0]
    results = [_evaluate(body, {**env, "#": item}) for item in items]
    if name == "map":
        return results
    if name == "filter":
        return [i for i, keep in zip(items, results, strict=True) if _truthy(keep, node)]
    hits = sum(1 for r in results if _truthy(r, node))
    return {"count": float(hits), "all": hits == len(items), "any": hits > 0, "none": hits == 0,
            "one": hits == 1}[name]


def _finite(value: float, node: Node) -> float:
    if not math.isfinite(value):
        raise FormulaError(f"the value at position {node.pos} is not a finite number ({value})")
    return value


def _truthy(value: Value, node: Node) -> bool:
    if value is None:
        raise FormulaError(f"a trigger used at position {node.pos} has no value")
    if isinstance(value, list):
        raise FormulaError(f"an array used as a condition at position {node.pos}")
    return bool(value)


def compute(formula: str, env: Mapping[str, float | None]) -> float:
    """Evaluate to a finite number (booleans count as 1/0); any failure is a FormulaError."""
    result = evaluate(compile_formula(formula), env)
    if result is None:
        raise FormulaError("formula produced no value")
    if isinstance(result, str | list):
        raise FormulaError(f"formula produced a{'n array' if isinstance(result, list) else ' string'}, not a number")
    return _finite(float(result), Node("result"))
