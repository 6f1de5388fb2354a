"""The run-search filter language: parse `filter=` and `order_by=` text into a small AST.

Grammar (keywords case-insensitive)::

    expr       := and_expr (OR and_expr)*
    and_expr   := atom (AND atom)*
    atom       := '(' expr ')' | comparison
    comparison := key op value | key [NOT] IN '(' string (',' string)* ')' | key IS [NOT] NULL
    key        := (metrics|metric|params|param|tags|tag|attributes|attribute|attr) '.' name
                | attribute-name

Compiling the AST to SQL lives elsewhere; this module only parses and validates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeAlias

from loopml.errors import InvalidFilter
from loopml.tracking.entities import RUN_STATUSES

Kind = Literal["metric", "param", "tag", "attribute"]


@dataclass(frozen=True)
class Comparison:
    """One `key op value` test; `position` is the offset of the key in the filter text."""

    kind: Kind
    key: str
    op: str
    value: float | str | tuple[str, ...] | None
    position: int


@dataclass(frozen=True)
class And:
    """All items hold."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one item holds."""

    items: tuple[Expr, ...]


Expr: TypeAlias = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    """One `order_by` item."""

    kind: Kind
    key: str
    ascending: bool


ATTRIBUTES: Final[dict[str, Literal["string", "number"]]] = {
    "run_id": "string",
    "run_name": "string",
    "status": "string",
    "user": "string",
    "start_time": "number",  # ms since the epoch
    "end_time": "number",  # ms since the epoch; NULL while the run is RUNNING
}

_ALIASES: Final[dict[Kind, tuple[str, ...]]] = {
    "metric": ("metrics", "metric"),
    "param": ("params", "param"),
    "tag": ("tags", "tag"),
    "attribute": ("attributes", "attribute", "attr"),
}
_PREFIXES: Final = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"})
_NUMBER_OPS: Final = ("=", "!=", "<", "<=", ">", ">=")
_NULL_OPS: Final = ("IS NULL", "IS NOT NULL")
_STRING_OPS: Final = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", *_NULL_OPS)
_MAX_DEPTH: Final = 100  # keeps hostile input far from Python's recursion limit

_NUMBER: Final = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN: Final = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<number>{number})
    | (?P<word>[^\W\d]\w*)
      (?:\.(?:`(?P<bkey>[^`]*)`|"(?P<dkey>(?:[^"\\]|\\.|"")*)"|(?P<pkey>[\w\-./:]+)))?
    | '(?P<sstr>(?:[^'\\]|\\.|'')*)'
    | "(?P<dstr>(?:[^"\\]|\\.|"")*)"
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<punct>[(),])
    | (?P<open>[`'"])
    | (?P<junk>.)
    """.replace("{number}", _NUMBER.pattern),
    re.VERBOSE | re.DOTALL,
)
_ESCAPES: Final = {q: re.compile(rf"\\(.)|{q}{q}", re.DOTALL) for q in "'\""}


class _Token(NamedTuple):
    kind: str  # word, key, string, number, op, ( ) , junk, end
    pos: int
    raw: str
    value: str = ""  # the unescaped string, or the key after the dot
    prefix: str = ""  # the word before the dot of a key


def _unescape(body: str, quote: str) -> str:
    """Return a quoted body with doubled quotes and backslash escapes of \\ ' " resolved."""

    def one(m: re.Match[str]) -> str:
        if m[1] is None:
            return quote
        return m[1] if m[1] in "\\'\"" else m[0]

    return _ESCAPES[quote].sub(one, body)


def _tokens(text: str) -> Iterator[_Token]:
    """Yield the tokens of `text` lazily, so errors surface in text order; end with `end`."""
    pos = 0
    while (m := _TOKEN.match(text, pos)) is not None:
        start, pos, kind = pos, m.end(), m.lastgroup or ""
        raw = m[0]
        if kind in ("bkey", "dkey", "pkey"):
            key = _unescape(m[kind], '"') if kind == "dkey" else m[kind]
            yield _Token("key", start, raw, key, m["word"])
        elif kind == "word" and text.startswith(".", pos):
            quote = text[pos + 1 : pos + 2]
            message = (
                f"unterminated quoted key: add the closing {quote}"
                if quote and quote in '`"'
                else f"expected a key after '{raw}.'; quote special characters with ` or \""
            )
            raise InvalidFilter(message, text, pos + 1)
        elif kind in ("sstr", "dstr"):
            yield _Token("string", start, raw, _unescape(m[kind], raw[0]))
        elif kind == "open":
            raise InvalidFilter(f"unterminated string: add the closing {raw}", text, start)
        elif kind == "punct":
            yield _Token(raw, start, raw)
        elif kind != "ws":
            yield _Token(kind, start, raw)
    yield _Token("end", len(text), "")


class _Parser:
    """Recursive descent over one text, one token of lookahead."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._stream = _tokens(text)
        self.tok = next(self._stream)

    def advance(self) -> _Token:
        """Consume the current token and return it."""
        tok, self.tok = self.tok, next(self._stream)
        return tok

    def is_word(self, *words: str) -> bool:
        """Return True if the current token is one of these keywords."""
        return self.tok.kind == "word" and self.tok.raw.upper() in words

    def fail(self, expected: str, *, got: bool = True, at: _Token | None = None) -> InvalidFilter:
        """Return the error at token `at` (default: the current one), naming it if `got`."""
        tok = at or self.tok
        found = "end of filter" if tok.kind == "end" else f"'{tok.raw}'"
        return InvalidFilter(f"{expected}, got {found}" if got else expected, self.text, tok.pos)

    def expr(self, depth: int = 0, after: str = "") -> Expr:
        """Parse `and_expr (OR and_expr)*`."""
        items = [self.and_expr(depth, after)]
        while self.is_word("OR"):
            items.append(self.and_expr(depth, f"'{self.advance().raw}'"))
        return _join(Or, items)

    def and_expr(self, depth: int, after: str) -> Expr:
        """Parse `atom (AND atom)*`."""
        items = [self.atom(depth, after)]
        while self.is_word("AND"):
            items.append(self.atom(depth, f"'{self.advance().raw}'"))
        return _join(And, items)

    def atom(self, depth: int, after: str) -> Expr:
        """Parse a parenthesised expression or a comparison."""
        if self.tok.kind != "(":
            return self.comparison(after)
        opening = self.advance()
        if depth >= _MAX_DEPTH:
            raise self.fail(f"parentheses nest deeper than {_MAX_DEPTH}", got=False, at=opening)
        inner = self.expr(depth + 1, "'('")
        if self.tok.kind == "end":
            raise self.fail(
                "unbalanced parenthesis: this '(' is never closed", got=False, at=opening
            )
        if self.tok.kind != ")":
            raise self.fail(f"expected AND, OR or ')' to close the '(' at position {opening.pos}")
        self.advance()
        return inner

    def identifier(self, expected: str) -> tuple[Kind, str]:
        """Parse a key such as `metrics.loss` or `status` into (kind, canonical key)."""
        tok = self.tok
        if tok.kind == "key":
            kind = _PREFIXES.get(tok.prefix.lower())
            if kind is None:
                prefixes = "metrics., params., tags. or attributes."
                raise self.fail(f"unknown prefix '{tok.prefix}.'; use {prefixes}", got=False)
            key = tok.value.lower() if kind == "attribute" else tok.value
            if not key:
                raise self.fail(f"empty key after '{tok.prefix}.'", got=False)
        elif tok.kind == "word" and tok.raw.upper() not in _KEYWORDS:
            kind, key = "attribute", tok.raw.lower()
        else:
            raise self.fail(expected)
        if kind == "attribute" and key not in ATTRIBUTES:
            raise self.fail(
                f"unknown attribute '{key}'; attributes are {', '.join(ATTRIBUTES)}"
                "; other keys need a prefix: metrics., params. or tags.",
                got=False,
            )
        self.advance()
        return kind, key

    def comparison(self, after: str) -> Comparison:
        """Parse `key op value`."""
        start = self.tok
        where = f" after {after}" if after else ""
        kind, key = self.identifier(f"expected a comparison such as metrics.loss < 0.1{where}")
        numeric = kind == "metric" or (kind == "attribute" and ATTRIBUTES[key] == "number")
        op = self.operator(start.raw, kind, numeric)
        value: float | str | tuple[str, ...] | None = None
        if op in ("IN", "NOT IN"):
            value = self.string_list(start.raw, kind, key, op)
        elif numeric and op not in _NULL_OPS:
            value = self.number(start.raw, kind, key, op)
        elif op not in _NULL_OPS:
            value = self.string(start.raw, kind, key, op)
        return Comparison(kind, key, op, value, start.pos)

    def operator(self, ident: str, kind: Kind, numeric: bool) -> str:
        """Parse the operator allowed for this kind of key."""
        allowed = (
            _NUMBER_OPS if kind == "metric" else _NUMBER_OPS + _NULL_OPS if numeric else _STRING_OPS
        )
        tok = self.tok
        op = tok.raw if tok.kind == "op" else tok.raw.upper() if tok.kind == "word" else ""
        if op == "NOT" and "NOT IN" in allowed:
            self.advance()
            if not self.is_word("IN"):
                raise self.fail(f"expected IN after '{ident} NOT'")
            op = "NOT IN"
        elif op == "IS" and "IS NULL" in allowed:
            self.advance()
            op = "IS NULL"
            if self.is_word("NOT"):
                self.advance()
                op = "IS NOT NULL"
            if not self.is_word("NULL"):
                raise self.fail(f"expected NULL or NOT NULL after '{ident} IS'")
        if op not in allowed:
            raise self.fail(
                f"expected a comparison operator ({', '.join(allowed)}) after '{ident}'"
            )
        self.advance()
        return op

    def number(self, ident: str, kind: Kind, key: str, op: str) -> float:
        """Parse a numeric value."""
        if self.tok.kind == "number":
            return float(self.advance().raw)
        if self.tok.kind == "string" and kind == "metric":
            example = self.tok.value if _NUMBER.fullmatch(self.tok.value) else "0.1"
            raise self.fail(f"metric values are numbers: write {ident} {op} {example}", got=False)
        if self.tok.kind == "string":
            example = f"{ident} {op} 1700000000000"
            raise self.fail(f"{key} is a number (ms since the epoch): write {example}", got=False)
        raise self.fail(f"expected a number after '{ident} {op}'")

    def string(self, ident: str, kind: Kind, key: str, op: str) -> str:
        """Parse a quoted string value."""
        tok = self.tok
        if tok.kind == "number":
            what = f"{key} is a string" if kind == "attribute" else f"{kind}s are strings"
            raise self.fail(f"{what}: write {ident} {op} '{tok.raw}'", got=False)
        if tok.kind != "string":
            hint = f" (quote it: '{tok.raw}')" if tok.kind == "word" else ""
            raise self.fail(f"expected a quoted string after '{ident} {op}'{hint}")
        if kind == "attribute" and key == "status" and op in ("=", "!=", "IN", "NOT IN"):
            if tok.value.upper() not in RUN_STATUSES:
                raise self.fail(f"expected a run status ({', '.join(RUN_STATUSES)})")
            return self.advance().value.upper()
        return self.advance().value

    def string_list(self, ident: str, kind: Kind, key: str, op: str) -> tuple[str, ...]:
        """Parse `( 'a', 'b', ... )`."""
        if self.tok.kind != "(":
            raise self.fail(f"expected '(' after '{ident} {op}'")
        self.advance()
        if self.tok.kind == ")":
            raise self.fail(f"empty {op} list: write {ident} {op} ('a', 'b')", got=False)
        values = [self.string(ident, kind, key, op)]
        while self.tok.kind == ",":
            self.advance()
            values.append(self.string(ident, kind, key, op))
        if self.tok.kind != ")":
            raise self.fail(f"expected ',' or ')' in the {op} list")
        self.advance()
        return tuple(values)


def _join(cls: type[And] | type[Or], items: list[Expr]) -> Expr:
    """Return the single item, or `cls` of the items with nested `cls` flattened."""
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def parse_filter(text: str | None) -> Expr | None:
    """Return the AST of a filter, or None for a missing or blank filter."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    expr = parser.expr()
    if parser.tok.kind == ")":
        raise parser.fail("unbalanced parenthesis: this ')' has no matching '('", got=False)
    if parser.tok.kind != "end":
        raise parser.fail("expected AND, OR or the end of the filter")
    return expr


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Return the sort keys of `order_by` items such as 'metrics.loss DESC'."""
    if isinstance(items, str):  # a lone string is one item, not a sequence of characters
        items = [items]
    keys: list[OrderKey] = []
    for item in items or ():
        parser = _Parser(item)
        if parser.tok.kind == "end":
            raise parser.fail("empty order_by item; write e.g. 'metrics.loss DESC'", got=False)
        ident = parser.tok.raw
        kind, key = parser.identifier("expected a key such as metrics.loss")
        ascending = True
        if parser.is_word("ASC", "DESC"):
            ascending = parser.advance().raw.upper() == "ASC"
        elif parser.tok.kind != "end":
            raise parser.fail(f"expected ASC or DESC after '{ident}'")
        if parser.tok.kind != "end":
            raise parser.fail("expected the end of the order_by item")
        keys.append(OrderKey(kind, key, ascending))
    return keys


__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Expr",
    "Kind",
    "Or",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]
