"""Tests for the run-search filter language."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import InvalidFilter, InvalidInput
from loopml.tracking.entities import RUN_STATUSES
from loopml.tracking.search_filter import (
    ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def cmp(kind: str, key: str, op: str, value: object, position: int = 0) -> Comparison:
    return Comparison(kind, key, op, value, position)  # type: ignore[arg-type]


def strip(expr: Expr | None) -> Expr | None:
    """Return the expression with every position set to 0."""
    if isinstance(expr, Comparison):
        return dataclasses.replace(expr, position=0)
    if isinstance(expr, And | Or):
        return type(expr)(tuple(strip(item) for item in expr.items))  # type: ignore[misc]
    return expr


def parse(text: str) -> Expr | None:
    return strip(parse_filter(text))


# -- normal cases -------------------------------------------------------------------------------


def test_example_from_the_docs_gives_or_inside_and() -> None:
    text = "metrics.loss < 0.1 and (params.max_depth = '5' or tags.team = 'a')"
    assert parse_filter(text) == And(
        (
            cmp("metric", "loss", "<", 0.1, 0),
            Or((cmp("param", "max_depth", "=", "5", 24), cmp("tag", "team", "=", "a", 50))),
        )
    )


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_missing_or_blank_filter_is_none(text: str | None) -> None:
    assert parse_filter(text) is None


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (cmp("metric", k, ">", 1.0) for k in "abc")
    assert parse("metrics.a > 1 or metrics.b > 1 and metrics.c > 1") == Or((a, And((b, c))))
    assert parse("metrics.a > 1 and metrics.b > 1 or metrics.c > 1") == Or((And((a, b)), c))
    assert parse("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1") == And((Or((a, b)), c))


def test_nested_same_operators_are_flattened() -> None:
    a, b, c, d = (cmp("metric", k, "=", 1.0) for k in "abcd")
    text = "(metrics.a = 1 and (metrics.b = 1)) and (metrics.c = 1 and metrics.d = 1)"
    assert parse(text) == And((a, b, c, d))
    assert parse("((metrics.a = 1 or metrics.b = 1)) or metrics.c = 1") == Or((a, b, c))
    assert parse("(((metrics.a = 1)))") == a


def test_keywords_are_case_insensitive() -> None:
    text = (
        "params.a In ('x') AnD params.b iS nOt NuLl oR params.c not in ('y') or tags.d ilike 'z%'"
    )
    assert parse(text) == Or(
        (
            And((cmp("param", "a", "IN", ("x",)), cmp("param", "b", "IS NOT NULL", None))),
            cmp("param", "c", "NOT IN", ("y",)),
            cmp("tag", "d", "ILIKE", "z%"),
        )
    )


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("metrics", "metric"),
        ("metric", "metric"),
        ("METRICS", "metric"),
        ("params", "param"),
        ("param", "param"),
        ("tags", "tag"),
        ("tag", "tag"),
    ],
)
def test_every_prefix_alias(prefix: str, kind: str) -> None:
    value = "1" if kind == "metric" else "'1'"
    expected = 1.0 if kind == "metric" else "1"
    assert parse_filter(f"{prefix}.k = {value}") == cmp(kind, "k", "=", expected)


@pytest.mark.parametrize("ident", ["attributes.run_name", "attribute.run_name", "attr.run_name"])
def test_attribute_prefix_aliases_and_bare_names(ident: str) -> None:
    assert (
        parse(f"{ident} = 'x'") == parse("run_name = 'x'") == cmp("attribute", "run_name", "=", "x")
    )
    assert parse("Run_Name = 'x'") == cmp("attribute", "run_name", "=", "x")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("metrics.val.loss < 1", "val.loss"),
        ("metrics.a-b/c:d_1 < 1", "a-b/c:d_1"),
        ("metrics.`my loss` < 1", "my loss"),
        ('metrics."lr (init)" < 1', "lr (init)"),
        ('metrics."say \\"hi\\"" < 1', 'say "hi"'),
        ('metrics."a""b" < 1', 'a"b'),
        ("metrics.`it's` < 1", "it's"),
    ],
)
def test_keys_plain_dotted_and_quoted(text: str, key: str) -> None:
    assert parse(text) == cmp("metric", key, "<", 1.0)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1", 1.0),
        ("-2", -2.0),
        ("+2.5", 2.5),
        (".5", 0.5),
        ("3.", 3.0),
        ("1e-3", 0.001),
        ("-1.5E+2", -150.0),
    ],
)
def test_metric_numbers(literal: str, value: float) -> None:
    assert parse(f"metrics.m>={literal}") == cmp("metric", "m", ">=", value)


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_numeric_operator(op: str) -> None:
    assert parse(f"metrics.m {op} 0") == cmp("metric", "m", op, 0.0)
    assert parse(f"start_time {op} 1700000000000") == cmp(
        "attribute", "start_time", op, 1700000000000.0
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'plain'", "plain"),
        ('"double"', "double"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'a\"b'", 'a"b'),
        ("'back\\\\slash'", "back\\slash"),
        ("'a\\_b%'", "a\\_b%"),
        ("''", ""),
        ("'two\nlines'", "two\nlines"),
        ("'and or ( ) ,'", "and or ( ) ,"),
    ],
)
def test_string_quoting_and_escapes(literal: str, value: str) -> None:
    assert parse(f"tags.t = {literal}") == cmp("tag", "t", "=", value)


def test_in_lists() -> None:
    assert parse("params.a IN ('x', \"y\",'z')") == cmp("param", "a", "IN", ("x", "y", "z"))
    assert parse("params.a NOT IN('x')") == cmp("param", "a", "NOT IN", ("x",))


def test_is_null() -> None:
    assert parse("tags.t IS NULL") == cmp("tag", "t", "IS NULL", None)
    assert parse("params.p is not null") == cmp("param", "p", "IS NOT NULL", None)
    assert parse("end_time IS NULL") == cmp("attribute", "end_time", "IS NULL", None)


def test_status_is_validated_and_canonicalised() -> None:
    assert parse("status = 'finished'") == cmp("attribute", "status", "=", "FINISHED")
    assert parse("status in ('running', 'Killed')") == cmp(
        "attribute", "status", "IN", ("RUNNING", "KILLED")
    )
    assert parse("status LIKE 'FIN%'") == cmp("attribute", "status", "LIKE", "FIN%")


def test_positions_point_at_each_key() -> None:
    expr = parse_filter("  metrics.a = 1 AND   params.b = 'x'")
    assert isinstance(expr, And)
    assert [item.position for item in expr.items] == [2, 22]  # type: ignore[union-attr]


def test_error_is_invalid_input_and_draws_a_pointer() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter("metrics.a ~ 1")
    assert isinstance(info.value, InvalidFilter)
    assert str(info.value).endswith("  metrics.a ~ 1\n            ^")


# -- errors -------------------------------------------------------------------------------------

ERRORS = [
    # (text, position, words the message must contain)
    ("params.a = 'abc", 11, "unterminated string"),
    ('params.a = "abc', 11, "unterminated string"),
    ("metrics.`abc < 1", 8, "unterminated quoted key"),
    ("(metrics.a < 1", 0, "unbalanced parenthesis"),
    ("metrics.a < 1)", 13, "unbalanced parenthesis"),
    ("(metrics.a < 1 metrics.b < 2)", 15, "expected AND, OR or ')'"),
    ("metrics.a < 1 metrics.b", 14, "expected AND, OR or the end of the filter"),
    ("metrics.a 1", 10, "expected a comparison operator (=, !=, <, <=, >, >=) after 'metrics.a'"),
    (
        "metrics.loss",
        12,
        "expected a comparison operator (=, !=, <, <=, >, >=) after 'metrics.loss'",
    ),
    ("metrics.a ~ 1", 10, "got '~'"),
    ("metrics.a == 1", 11, "expected a number after 'metrics.a ='"),
    ("metrics.a <", 11, "expected a number"),
    ("params.a =", 10, "expected a quoted string"),
    ("params.a IN ()", 13, "empty IN list"),
    ("params.a IN ('x',)", 17, "expected a quoted string"),
    ("params.a IN ('x' 'y')", 17, "expected ',' or ')'"),
    ("params.a IN 'x'", 12, "expected '('"),
    ("metrics.a < 1 and", 17, "expected a comparison"),
    ("metrics.a < 1 AND ", 18, "after 'AND'"),
    ("metrics.a < 1 or or metrics.b < 1", 17, "expected a comparison"),
    ("and metrics.a < 1", 0, "expected a comparison"),
    ("()", 1, "expected a comparison"),
    ("metricz.x < 1", 0, "unknown prefix 'metricz.'; use metrics., params., tags. or attributes."),
    ("loss < 1", 0, "attributes are run_id, run_name, status, user, start_time, end_time"),
    ("attributes.foo = 'x'", 0, "unknown attribute 'foo'"),
    ("metrics.loss < 'a'", 15, "metric values are numbers"),
    ("metrics.loss < '0.5'", 15, "write metrics.loss < 0.5"),
    ("params.max_depth = 5", 19, "params are strings: write params.max_depth = '5'"),
    ("tags.t IN ('a', 1)", 16, "tags are strings"),
    ("run_name = 3", 11, "run_name is a string"),
    ("start_time > 'yesterday'", 13, "start_time is a number"),
    ("status = 'done'", 9, "expected a run status (RUNNING, FINISHED, FAILED, KILLED)"),
    ("status NOT IN ('FAILED', 'nope')", 25, "expected a run status"),
    ("params.a = FINISHED", 11, "quote it: 'FINISHED'"),
    ("params.a < '1'", 9, "(=, !=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL)"),
    ("metrics.a LIKE '1'", 10, "(=, !=, <, <=, >, >=)"),
    ("metrics.a IS NULL", 10, "expected a comparison operator"),
    ("start_time LIKE '1'", 11, "(=, !=, <, <=, >, >=, IS NULL, IS NOT NULL)"),
    ("params.a NOT LIKE 'x'", 13, "expected IN after 'params.a NOT'"),
    ("params.a IS 'x'", 12, "expected NULL or NOT NULL"),
    ("params.a IS NOT", 15, "expected NULL or NOT NULL"),
    ("metrics. < 1", 8, "expected a key after 'metrics.'"),
    ("params.'x' = 'y'", 7, "quote special characters"),
    ("metrics.`` < 1", 0, "empty key"),
]


@pytest.mark.parametrize(("text", "position", "words"), ERRORS)
def test_malformed_filter_names_the_problem_and_its_position(
    text: str, position: int, words: str
) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    assert info.value.position == position
    assert info.value.text == text
    assert words in str(info.value)


def test_errors_surface_in_text_order() -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter("metrics.a ~ 1 and params.b = 'unterminated")
    assert info.value.position == 10


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert parse("(" * 50 + "metrics.a = 1" + ")" * 50) == cmp("metric", "a", "=", 1.0)
    with pytest.raises(InvalidFilter, match="nest deeper"):
        parse_filter("(" * 5000 + "metrics.a = 1" + ")" * 5000)


# -- order_by -----------------------------------------------------------------------------------


def test_order_by() -> None:
    assert parse_order_by(
        ["metrics.loss", "metrics.loss ASC", "params.lr DESC", "start_time desc", "tags.`my tag`"]
    ) == [
        OrderKey("metric", "loss", True),
        OrderKey("metric", "loss", True),
        OrderKey("param", "lr", False),
        OrderKey("attribute", "start_time", False),
        OrderKey("tag", "my tag", True),
    ]
    assert parse_order_by(None) == parse_order_by([]) == []
    assert parse_order_by("attr.run_name Desc") == [OrderKey("attribute", "run_name", False)]


@pytest.mark.parametrize(
    ("item", "position", "words"),
    [
        ("metrics.loss UP", 13, "expected ASC or DESC after 'metrics.loss'"),
        ("metrics.loss ASC DESC", 17, "expected the end"),
        ("metrics.loss DESC,", 17, "expected the end"),
        ("  ", 2, "empty order_by item"),
        ("", 0, "empty order_by item"),
        ("DESC", 0, "unknown attribute 'desc'"),
        ("(metrics.loss)", 0, "expected a key such as metrics.loss, got '('"),
        ("metricz.loss", 0, "unknown prefix"),
        ("bogus DESC", 0, "unknown attribute"),
        ("tags.`open", 5, "unterminated quoted key"),
    ],
)
def test_bad_order_by_item(item: str, position: int, words: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_order_by(["metrics.ok", item])
    assert (info.value.text, info.value.position) == (item, position)
    assert words in str(info.value)


# -- round trip: random AST -> text -> same AST -------------------------------------------------

PLAIN_KEY = re.compile(r"[\w\-./:]+")
PREFIXES = {
    "metric": ["metrics", "metric", "Metrics"],
    "param": ["params", "param"],
    "tag": ["tags", "TAG"],
    "attribute": ["attributes", "attribute", "attr", ""],
}
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**15), 10**15).map(
    float
)
keys = st.text(min_size=1, max_size=12)


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    kind = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    key = draw(st.sampled_from(sorted(ATTRIBUTES))) if kind == "attribute" else draw(keys)
    if kind == "metric" or (kind == "attribute" and ATTRIBUTES[key] == "number"):
        ops = ["=", "!=", "<", "<=", ">", ">="] + (["IS NULL"] if kind == "attribute" else [])
        op = draw(st.sampled_from(ops))
        return cmp(kind, key, op, None if op == "IS NULL" else draw(numbers))
    op = draw(
        st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"])
    )
    exact = kind == "attribute" and key == "status" and op in ("=", "!=", "IN", "NOT IN")
    strings = st.sampled_from(RUN_STATUSES) if exact else st.text(max_size=8)
    if op in ("IN", "NOT IN"):
        return cmp(kind, key, op, tuple(draw(st.lists(strings, min_size=1, max_size=3))))
    return cmp(kind, key, op, None if op.startswith("IS") else draw(strings))


def expressions() -> st.SearchStrategy[Expr]:
    return st.recursive(
        comparisons(),
        lambda children: (
            st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple))
            | st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple))
        ),
        max_leaves=8,
    )


def render_key(kind: str, key: str, rng: random.Random) -> str:
    prefix = rng.choice(PREFIXES[kind])
    if not prefix:
        return key.upper() if rng.random() < 0.3 else key
    if PLAIN_KEY.fullmatch(key) and rng.random() < 0.8:
        return f"{prefix}.{key}"
    if "`" not in key and rng.random() < 0.5:
        return f"{prefix}.`{key}`"
    return prefix + '."' + key.replace("\\", "\\\\").replace('"', rng.choice(['""', '\\"'])) + '"'


def render_string(value: str, rng: random.Random, *, status: bool = False) -> str:
    quote = rng.choice("'\"")
    body = value.replace("\\", "\\\\").replace(quote, rng.choice([quote * 2, "\\" + quote]))
    return quote + (body.lower() if status else body) + quote


def word(keyword: str, rng: random.Random) -> str:
    return rng.choice([keyword, keyword.lower(), keyword.title()])


def render(expr: Expr, rng: random.Random, parent: str = "") -> str:
    """Return filter text for `expr`, with parentheses where needed and sometimes more."""
    if isinstance(expr, And | Or):
        joiner = word("AND" if isinstance(expr, And) else "OR", rng)
        text = f" {joiner} ".join(render(item, rng, type(expr).__name__) for item in expr.items)
        needs_parens = parent == "And" and isinstance(expr, Or)
        return f"({text})" if needs_parens or rng.random() < 0.3 else text
    ident = render_key(expr.kind, expr.key, rng)
    status = (
        expr.kind == "attribute" and expr.key == "status" and expr.op in ("=", "!=", "IN", "NOT IN")
    )
    if expr.value is None:
        return f"{ident} {word(expr.op, rng)}"
    if isinstance(expr.value, float):
        return f"{ident}{rng.choice(['', ' '])}{expr.op} {expr.value!r}"
    if isinstance(expr.value, tuple):
        items = ",".join(render_string(v, rng, status=status) for v in expr.value)
        return f"{ident} {word(expr.op, rng)} ({items})"
    return f"{ident} {word(expr.op, rng)} {render_string(expr.value, rng, status=status)}"


def flatten(expr: Expr) -> Expr:
    if isinstance(expr, Comparison):
        return expr
    items: list[Expr] = []
    for item in map(flatten, expr.items):
        items.extend(item.items if type(item) is type(expr) else (item,))
    return type(expr)(tuple(items))


@given(expressions(), st.randoms(use_true_random=False))
def test_rendered_ast_parses_back_to_the_same_ast(expr: Expr, rng: random.Random) -> None:
    assert parse(render(expr, rng)) == flatten(expr)
