"""Tokenizer and recursive-descent parser for the formula language (no Python `eval` anywhere).

Grammar, loosest binding first (as in Python):
    or_expr    := and_expr ("or" and_expr)*               ("||", "|" are synonyms)
    and_expr   := not_expr ("and" not_expr)*              ("&&", "&" are synonyms)
    not_expr   := "not" not_expr | comparison              ("!" is a synonym)
    comparison := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]   (never chained)
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | power
    power      := atom [("**" | "^") unary]                (right-associative: -x**2 is -(x**2))
    atom       := number | string | name | name "(" args ")" | "(" or_expr ")"
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import NamedTuple, NoReturn

from gradfit.errors import FormulaError
from gradfit.expr._nodes import COMPARISONS, FUNCTIONS, Binary, Call, Const, Expr, Name, Str, Unary

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]*")
# Longest first, so that "**" is not read as two "*", nor "!=" as "!".
_OPERATORS = ("**", "==", "!=", "<=", ">=", "&&", "||", "+", "-", "*", "/", "^", "<", ">", "&", "|", "!")
_SYNONYMS = {"^": "**", "&&": "and", "&": "and", "||": "or", "|": "or", "!": "not"}
_KEYWORDS = frozenset({"and", "or", "not"})
_ESCAPABLE = frozenset({"\\", '"', "'"})
_STRING_HINT = "strings can only be compared with == or !="


class _Token(NamedTuple):
    kind: str  # "num", "str", "name", "op" or "end"
    raw: str  # the text as written, for messages
    pos: int
    op: str = ""  # canonical operator, for kind "op"
    value: float | str | None = None

    def describe(self) -> str:
        return "end of formula" if self.kind == "end" else repr(self.raw)


class _SyntaxError(Exception):
    def __init__(self, message: str, pos: int | None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint


def parse(text: str, where: str = "") -> Expr:
    """Parse a formula; `where` (e.g. "spec.yaml: choice.alternatives.car.utility") prefixes messages.

    Raises `FormulaError` with a one-line message for any syntax error, unknown function, wrong number
    of arguments, or misuse of a string literal (strings may only be compared with == or !=).
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = repr(text)  # YAML reads `utility: 0` as a number
    if not isinstance(text, str):
        raise FormulaError(f"{_prefix(where)}a formula must be text, not {type(text).__name__} {text!r}")
    try:
        node = _Parser(text).parse()
    except _SyntaxError as exc:
        at = f" at position {exc.pos}" if exc.pos is not None else ""
        hint = f"; {exc.hint}" if exc.hint else ""
        raise FormulaError(
            f"{_prefix(where)}cannot parse formula {_quote_formula(text)}: {exc.message}{at}{hint}"
        ) from None
    except RecursionError:
        raise FormulaError(
            f"{_prefix(where)}cannot parse formula {_quote_formula(text)}: it is nested too deeply"
        ) from None
    return replace(node, _source=text, _where=where)


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _quote_formula(text: str) -> str:
    """The formula on one line; each line break becomes one space so positions still match."""
    return "'" + re.sub(r"[\r\n\t\f\v]", " ", text) + "'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            i = _read_number(text, i, tokens)
        elif c == "_" or (c.isascii() and c.isalpha()):
            m = _NAME.match(text, i)
            assert m is not None
            word = m.group()
            if word in _KEYWORDS:
                tokens.append(_Token("op", word, i, op=word))
            else:
                tokens.append(_Token("name", word, i, value=word))
            i = m.end()
        elif c in "\"'":
            i = _read_string(text, i, tokens)
        elif c in "(),":
            tokens.append(_Token("op", c, i, op=c))
            i += 1
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                if c == "=":
                    raise _SyntaxError("unexpected '='", i, "use '==' to compare")
                raise _SyntaxError(f"unexpected character {c!r}", i)
            tokens.append(_Token("op", op, i, op=_SYNONYMS.get(op, op)))
            i += len(op)
    tokens.append(_Token("end", "", n))
    return tokens


def _read_number(text: str, start: int, tokens: list[_Token]) -> int:
    m = _NUMBER.match(text, start)
    assert m is not None
    tail = _NUMBER_TAIL.match(text, m.end())
    if tail is not None and tail.group():
        raise _SyntaxError(f"malformed number {text[start : tail.end()]!r}", start)
    value = float(m.group())
    if not math.isfinite(value):
        raise _SyntaxError(f"number {m.group()!r} is too large", start)
    tokens.append(_Token("num", m.group(), start, value=value))
    return m.end()


def _read_string(text: str, start: int, tokens: list[_Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            tokens.append(_Token("str", text[start : i + 1], start, value="".join(chars)))
            return i + 1
        # Only \\, \" and \' are escapes; any other backslash is kept, so Windows-like paths survive.
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            chars.append(text[i + 1])
            i += 2
        else:
            chars.append(c)
            i += 1
    raise _SyntaxError("unterminated string", start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _at(self, *ops: str) -> bool:
        return self.peek.kind == "op" and self.peek.op in ops

    def _fail(self, message: str, pos: int | None, hint: str = "") -> NoReturn:
        raise _SyntaxError(message, pos, hint)

    def _unexpected(self, tok: _Token) -> NoReturn:
        self._fail(f"unexpected {tok.describe()}", tok.pos)

    def parse(self) -> Expr:
        if self.peek.kind == "end":
            self._fail("the formula is empty", None)
        node = self._or()
        tok = self.peek
        if tok.kind != "end":
            if tok.raw == ")":
                self._fail("unexpected ')' without a matching '('", tok.pos)
            self._unexpected(tok)
        if isinstance(node, Str):
            self._fail("a formula cannot be just a string", 0)
        return node

    def _binary(self, op_tok: _Token, left: Expr, right: Expr) -> Expr:
        op = op_tok.op
        strings = [side for side in (left, right) if isinstance(side, Str)]
        if strings and op in COMPARISONS:
            if op not in ("==", "!="):
                self._fail(
                    f"ordering comparison with a string: '{left} {op_tok.raw} {right}'",
                    op_tok.pos,
                    _STRING_HINT,
                )
            other = right if left is strings[0] else left
            if not isinstance(other, Name | Str):
                self._fail(
                    f"the string {strings[0].text} can only be compared with a column name, "
                    f"not with '{other}', in the comparison {op_tok.raw!r}",
                    op_tok.pos,
                )
        elif strings:
            self._fail(
                f"the string {strings[0].text} cannot be an operand of {op_tok.raw!r}",
                op_tok.pos,
                _STRING_HINT,
            )
        return Binary(op, left, right)

    def _or(self) -> Expr:
        node = self._and()
        while self._at("or"):
            tok = self._next()
            node = self._binary(tok, node, self._and())
        return node

    def _and(self) -> Expr:
        node = self._not()
        while self._at("and"):
            tok = self._next()
            node = self._binary(tok, node, self._not())
        return node

    def _not(self) -> Expr:
        if self._at("not"):
            tok = self._next()
            return self._unary(tok, self._not())
        return self._comparison()

    def _comparison(self) -> Expr:
        node = self._sum()
        if self._at(*COMPARISONS):
            tok = self._next()
            node = self._binary(tok, node, self._sum())
            if self._at(*COMPARISONS):
                self._fail(
                    f"comparisons cannot be chained: {self.peek.raw!r} follows {tok.raw!r}",
                    self.peek.pos,
                    "combine them with 'and', e.g. (a < b) and (b < c)",
                )
        return node

    def _sum(self) -> Expr:
        node = self._product()
        while self._at("+", "-"):
            tok = self._next()
            node = self._binary(tok, node, self._product())
        return node

    def _product(self) -> Expr:
        node = self._signed()
        while self._at("*", "/"):
            tok = self._next()
            node = self._binary(tok, node, self._signed())
        return node

    def _signed(self) -> Expr:
        if self._at("-", "+"):
            tok = self._next()
            return self._unary(tok, self._signed())
        return self._power()

    def _power(self) -> Expr:
        node = self._atom()
        if self._at("**"):
            tok = self._next()
            node = self._binary(tok, node, self._signed())
        return node

    def _unary(self, tok: _Token, operand: Expr) -> Expr:
        if isinstance(operand, Str):
            self._fail(
                f"the string {operand.text} cannot be an operand of {tok.raw!r}",
                tok.pos,
                _STRING_HINT,
            )
        return Unary(tok.op, operand)

    def _atom(self) -> Expr:
        tok = self._next()
        if tok.kind == "num":
            assert isinstance(tok.value, float)
            return Const(tok.value)
        if tok.kind == "str":
            assert isinstance(tok.value, str)
            return Str(tok.value)
        if tok.kind == "name":
            if self._at("("):
                return self._call(tok)
            return Name(tok.raw)
        if tok.kind == "op" and tok.op == "(":
            node = self._or()
            if not self._at(")"):
                self._fail(
                    f"expected ')' to close the '(' at position {tok.pos}, found {self.peek.describe()}",
                    self.peek.pos,
                )
            self._next()
            return node
        self._unexpected(tok)

    def _call(self, name_tok: _Token) -> Expr:
        func = name_tok.raw
        if func not in FUNCTIONS:
            self._fail(
                f"unknown function {func!r} (available functions: {', '.join(sorted(FUNCTIONS))})",
                name_tok.pos,
            )
        open_tok = self._next()
        args: list[Expr] = []
        if not self._at(")"):
            args.append(self._or())
            while self._at(","):
                self._next()
                args.append(self._or())
        if not self._at(")"):
            self._fail(
                f"expected ',' or ')' in the call to {func!r} opened at position {open_tok.pos}, "
                f"found {self.peek.describe()}",
                self.peek.pos,
            )
        self._next()
        fewest, most = FUNCTIONS[func]
        if len(args) < fewest or (most is not None and len(args) > most):
            if most == fewest:
                wanted = f"exactly {fewest} argument{'s' if fewest != 1 else ''}"
            else:
                wanted = f"at least {fewest} arguments"
            self._fail(f"function {func!r} takes {wanted}, got {len(args)}", name_tok.pos)
        for arg in args:
            if isinstance(arg, Str):
                self._fail(f"function {func!r} cannot take the string {arg.text}", name_tok.pos)
        return Call(func, tuple(args))
