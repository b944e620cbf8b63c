"""A precedence-climbing (Pratt) parser from tokens to the parse tree.

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons (which do not chain),
``+ -``, ``* /``, unary ``-``, then numbers, names, calls and parentheses. Calls take
positional arguments and, after them, keyword arguments named as in the operator's
signature (``quantile(close, 5, q=0.8)``); both become the same positional call, so the
canonical text has one spelling. A minus before a number literal is folded into it
(``-1`` is the number -1), so ``ref(close, -1)`` reports the lag -1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from alphaforge.expressions.check import BAR_FIELDS, check
from alphaforge.expressions.errors import ExpressionError
from alphaforge.expressions.lexer import Token, tokenize
from alphaforge.expressions.nodes import MAX_DEPTH, Call, Expr, Name, Number, guard_depth, start_of
from alphaforge.expressions.operators import (
    COMPARISON_POWER,
    FUNCTIONS,
    INFIX,
    NEG_POWER,
    NOT_POWER,
    OPERATORS,
    Operator,
)

def parse(text: str, fields: Iterable[str] = BAR_FIELDS) -> Expr:
    """Parse and check ``text``; ``fields`` are the names it may read (default: the bar
    fields ``open, high, low, close, volume``). Raises ``ExpressionError`` with the position
    of the mistake."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, not {type(text).__name__}", 0)
    expr = parse_syntax(text)
    check(expr, fields)
    return expr


def parse_syntax(text: str) -> Expr:
    """The parse tree of ``text``, with calls resolved against the operator table (names,
    arity, keywords) but field names and argument kinds not yet checked (``check`` does)."""
    expr = _Parser(text).parse()
    guard_depth(expr)
    return expr


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    # -- token stream --------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, kind: str, context: str, opened: Token | None = None) -> Token:
        token = self.peek()
        if token.kind != kind:
            where = f" to close the '(' at position {opened.pos}" if opened else ""
            raise ExpressionError(f"expected '{kind}'{where} {context}, found {_describe(token)}", token.pos)
        return self.take()

    # -- grammar -------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise ExpressionError("empty expression", 0)
        expr = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {_describe(token)} after a complete expression", token.pos)
        return expr

    def expression(self, min_power: int) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested more than {MAX_DEPTH} deep", self.peek().pos)
        left = self.prefix(self.take())
        compared = False
        while True:
            token = self.peek()
            infix = INFIX.get(token.text) if token.kind in ("op", "keyword") else None
            if infix is None or infix[1] <= min_power:
                break
            op, power = infix
            if power == COMPARISON_POWER:
                if compared:
                    raise ExpressionError(
                        "comparisons do not chain: write 'a < b and b < c' instead of 'a < b < c'", token.pos
                    )
                compared = True
            self.take()
            right = self.expression(power)
            left = Call(op, (left, right), token.pos)
        self.depth -= 1
        return left

    def prefix(self, token: Token) -> Expr:
        if token.kind == "number":
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"number {token.text} is out of range", token.pos)
            return Number(value, token.pos)
        if token.kind == "op" and token.text == "-":
            operand = self.expression(NEG_POWER)
            if isinstance(operand, Number):
                return Number(-operand.value, token.pos)
            return Call("neg", (operand,), token.pos)
        if token.kind == "keyword" and token.text == "not":
            return Call("not", (self.expression(NOT_POWER),), token.pos)
        if token.kind == "(":
            inner = self.expression(0)
            self.expect(")", "", opened=token)
            return inner
        if token.kind == "name":
            if self.peek().kind == "(":
                return self.call(token)
            if token.text in FUNCTIONS:
                op = FUNCTIONS[token.text]
                raise ExpressionError(f"'{token.text}' is a function: call it as {op.signature}", token.pos)
            return Name(token.text, token.pos)
        raise ExpressionError(f"expected a number, a name or '(', found {_describe(token)}", token.pos)

    def call(self, name: Token) -> Call:
        op = FUNCTIONS.get(name.text)
        if op is None:
            hint = " (write it with its symbol)" if name.text in OPERATORS else ""
            raise ExpressionError(
                f"unknown function '{name.text}'{hint}; functions: {', '.join(sorted(FUNCTIONS))}", name.pos
            )
        opened = self.take()
        positional: list[Expr] = []
        keywords: dict[str, Expr] = {}
        keyword_pos: dict[str, int] = {}
        if self.peek().kind != ")":
            while True:
                token = self.peek()
                if token.kind == "name" and self.peek(1).kind == "=":
                    self.index += 2
                    if token.text in keywords:
                        raise ExpressionError(f"{op.name}'s '{token.text}' given twice", token.pos)
                    keywords[token.text] = self.expression(0)
                    keyword_pos[token.text] = token.pos
                elif keywords:
                    raise ExpressionError("a positional argument after a keyword argument", token.pos)
                else:
                    positional.append(self.expression(0))
                if self.peek().kind != ",":
                    break
                self.take()
        closing = self.expect(")", f"after {op.name}'s arguments", opened=opened)
        names = [p.name for p in op.params]
        if len(positional) > len(names):
            extra = positional[len(names)]
            raise ExpressionError(_arity(op, len(positional) + len(keywords)), start_of(extra))
        args: dict[str, Expr] = dict(zip(names, positional))
        for key, value in keywords.items():
            if key not in names:
                raise ExpressionError(
                    f"{op.name} has no parameter '{key}' (its parameters: {', '.join(names)})", keyword_pos[key]
                )
            if key in args:
                raise ExpressionError(f"{op.name}'s '{key}' given both by position and by name", keyword_pos[key])
            args[key] = value
        missing = [n for n in names if n not in args]
        if missing:
            raise ExpressionError(
                _arity(op, len(args)) + f": missing {', '.join(missing)}", closing.pos
            )
        return Call(op.name, tuple(args[n] for n in names), name.pos)


def _arity(op: Operator, got: int) -> str:
    count = len(op.params)
    return f"{op.signature} takes {count} argument{'s' if count != 1 else ''}, got {got}"


def _describe(token: Token) -> str:
    return "the end of the expression" if token.kind == "end" else f"'{token.text}'"
