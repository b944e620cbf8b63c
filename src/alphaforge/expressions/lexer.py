"""Tokenizer: the expression's characters into numbers, names and punctuation.

Hand-written (no Python tokenizer, no eval): the language is not Python and never runs as
Python, so nothing a user writes can reach the interpreter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from alphaforge.expressions.errors import ExpressionError

TokenKind = Literal["number", "name", "keyword", "op", "(", ")", ",", "=", "end"]

KEYWORDS = frozenset({"and", "or", "not"})
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TWO_CHAR_OPS = ("<=", ">=", "==", "!=")
_ONE_CHAR_OPS = "+-*/<>"
_PUNCTUATION = "(),="
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
#: Characters from other expression languages, with the spelling this one uses.
_HINTS = {
    "$": "fields are plain names (close, not $close)",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or != for 'not equal')",
    "~": "use 'not'",
    "^": "there is no power operator",
    "%": "there is no modulo operator",
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token at ``len(text)``."""
    tokens: list[Token] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in _DIGITS or (char == "." and i + 1 < size and text[i + 1] in _DIGITS):
            match = _NUMBER.match(text, i)
            assert match is not None
            end = match.end()
            if end < size and (text[end].isalnum() or text[end] in "._"):
                raise ExpressionError(f"malformed number {text[i:end + 1]!r}", i)
            tokens.append(Token("number", match.group(), i))
            i = end
            continue
        if char in _NAME_START:
            match = _NAME.match(text, i)
            assert match is not None
            word = match.group()
            tokens.append(Token("keyword" if word in KEYWORDS else "name", word, i))
            i = match.end()
            continue
        if text.startswith(_TWO_CHAR_OPS, i):
            tokens.append(Token("op", text[i:i + 2], i))
            i += 2
            continue
        if char in _ONE_CHAR_OPS:
            tokens.append(Token("op", char, i))
        elif char in _PUNCTUATION:
            tokens.append(Token(char, char, i))  # type: ignore[arg-type]
        else:
            hint = _HINTS.get(char)
            raise ExpressionError(f"unexpected character {char!r}" + (f": {hint}" if hint else ""), i)
        i += 1
    tokens.append(Token("end", "", size))
    return tokens
