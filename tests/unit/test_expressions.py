"""The factor-expression language: parser, canonical text, checks with positions, static
analysis, and every operator against an independent per-symbol computation (pandas on each
symbol's own series, scipy's linregress, numpy loops) on symbols with different calendars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alphaforge.errors import InvalidInput
from alphaforge.expressions import (
    BAR_FIELDS,
    Call,
    Expr,
    ExpressionError,
    Name,
    Number,
    PanelData,
    canonical,
    check,
    evaluate,
    fields_of,
    is_cross_sectional,
    is_recursive,
    kernels,
    parse,
    plan,
    warmup,
)
from alphaforge.plugins.features.cross_section import apply_cross_section

DAY = 86_400_000_000_000
FIELDS = ("open", "high", "low", "close", "volume")


def make_panel(seed: int = 0) -> PanelData:
    """Three symbols, three calendars: A every day from day 0; B from day 7 with gaps;
    C only 9 bars (shorter than most windows) from day 20."""
    rng = np.random.default_rng(seed)
    calendars = {
        "A": np.arange(70),
        "B": np.sort(rng.choice(np.arange(7, 90), size=55, replace=False)),
        "C": np.arange(20, 29),
    }
    stamps, fields = [], {f: [] for f in FIELDS}
    for days in calendars.values():
        n = len(days)
        close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
        open_ = close * np.exp(rng.normal(0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
        volume = np.round(rng.lognormal(10, 0.6, n))
        stamps.append(days * DAY)
        for name, values in zip(FIELDS, (open_, high, low, close, volume)):
            fields[name].append(values)
    return PanelData.from_arrays(list(calendars), stamps, fields)


PANEL = make_panel()


def series(panel: PanelData, symbol: str, field: str) -> pd.Series:
    rows = panel.rows(symbol)
    return pd.Series(panel.fields[field][rows], index=panel.timestamps[rows])


def per_symbol(panel: PanelData, compute) -> np.ndarray:
    """``compute(symbol -> field -> its own series)`` for each symbol alone, concatenated in
    the panel's row order: the reference never sees two symbols at once."""
    out = []
    for symbol in panel.symbols:
        result = compute(lambda field, s=symbol: series(panel, s, field))
        out.append(np.asarray(result, dtype=np.float64))
    return np.concatenate(out)


def value(text: str, panel: PanelData = PANEL) -> np.ndarray:
    return evaluate({"x": text}, panel)["x"]


def assert_same(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def window_apply(s: pd.Series, n: int, fn) -> pd.Series:
    """``fn`` on each full window of ``n`` values (oldest first), by an explicit loop."""
    values = s.to_numpy()
    out = np.full(len(values), np.nan)
    for t in range(n - 1, len(values)):
        window = values[t - n + 1:t + 1]
        if not np.isnan(window).any():
            out[t] = fn(window)
    return pd.Series(out, index=s.index)


# -- parsing and canonical text ----------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("mean(close,5)", "mean( close , 5 )"),
        ("mean(close, 5)", "mean(close, 5.0)"),
        ("mean(close, 5)", "mean(close, n=5)"),
        ("quantile(close, 5, 0.8)", "quantile(close, q=.8, n=5)"),
        ("close", "((close))"),
        ("close + 1e-12", "close+0.000000000001"),
        ("-1", "-(1)"),
        ("close - -1", "close-(-1.0)"),
        ("a + b + c", "(a + b) + c"),
        ("not a > b", "not (a > b)"),
        ("-a * b", "(-a) * b"),
    ],
)
def test_equal_expressions_have_one_canonical_text(a: str, b: str) -> None:
    fields = BAR_FIELDS | {"a", "b", "c"}
    assert parse(a, fields) == parse(b, fields)
    assert canonical(parse(a, fields)) == canonical(parse(b, fields))


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("mean( close ,5)/close", "mean(close, 5) / close"),
        ("(close-open)/(high-low+1e-12)", "(close - open) / (high - low + 1e-12)"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a/(b*c)", "a / (b * c)"),
        ("(a+b)*c", "(a + b) * c"),
        ("a+b*c", "a + b * c"),
        ("-(a+b)", "-(a + b)"),
        ("(a<b)==(b<c)", "(a < b) == (b < c)"),
        ("a>b and (b>c or c>a)", "a > b and (b > c or c > a)"),
        ("not(a>b and b>c)", "not (a > b and b > c)"),
        ("if(a>b,1.50,-2)", "if(a > b, 1.5, -2)"),
        ("quantile(q=0.20, x=close, n=10)", "quantile(close, 10, 0.2)"),
        ("1000000", "1000000"),
        ("2.5e20", "2.5e+20"),
    ],
)
def test_canonical_spelling(text: str, spelled: str) -> None:
    expr = parse(text, BAR_FIELDS | {"a", "b", "c"})
    assert canonical(expr) == spelled
    assert parse(spelled, BAR_FIELDS | {"a", "b", "c"}) == expr


@pytest.mark.parametrize(("a", "b"), [("a - (b - c)", "a - b - c"), ("(a + b) * c", "a + b * c"), ("a / b", "b / a")])
def test_different_trees_have_different_texts(a: str, b: str) -> None:
    fields = {"a", "b", "c"}
    assert parse(a, fields) != parse(b, fields)
    assert canonical(parse(a, fields)) != canonical(parse(b, fields))


def test_nodes_carry_their_positions() -> None:
    expr = parse("mean(close, 5) / close")
    assert expr == Call("div", (Call("mean", (Name("close"), Number(5))), Name("close")))
    assert expr.pos == 15
    mean, close = expr.args
    assert (mean.pos, mean.args[0].pos, mean.args[1].pos, close.pos) == (0, 5, 12, 17)
    assert parse("ref(close,  1)").args[1].pos == 12
    assert parse("close - -1").args[1] == Number(-1, 8)  # the minus folds into the number, at its position


def test_programmatic_trees_print_and_reparse() -> None:
    assert canonical(Call("neg", (Number(2),))) == "-2" == canonical(Number(-2))
    assert canonical(Call("neg", (Call("neg", (Number(2),)),))) == "2"
    assert canonical(Call("neg", (Call("neg", (Name("close"),)),))) == "--close" == canonical(parse("--close"))
    assert canonical(Call("sub", (Name("close"), Call("sub", (Name("open"), Number(1)))))) == "close - (open - 1)"


# -- errors name the position of the mistake -------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("ref(close, -1)", 11, "ref's lag must be a positive integer constant (got -1): a negative lag would read the future"),
        ("ref(close, 0)", 11, "(got 0): a lag of 0 is the current bar"),
        ("delta(close, -2)", 13, "delta's lag must be a positive integer constant (got -2)"),
        ("mean(close, 2.5)", 12, "mean's window must be a positive integer constant (got 2.5)"),
        ("mean(close, n)", 12, "(got the name 'n')"),
        ("mean(close, 2 + 3)", 12, "(got the expression 2 + 3)"),
        ("mean(close, 0)", 12, "(got 0): a window holds at least one bar"),
        ("std(close, 1)", 11, "std's window must be an integer constant >= 2 (got 1)"),
        ("corr(close, open, 1)", 18, "corr's window must be an integer constant >= 2"),
        ("ewm(close, 0)", 11, "ewm's span must be a positive integer constant (got 0)"),
        ("quantile(close, 5, 1.5)", 19, "quantile's q must be a constant in [0, 1] (got 1.5)"),
        ("mean(close, 500000)", 12, "at most 100000 bars"),
        ("close + clsoe", 8, "unknown name 'clsoe'; valid names: close, high, low, open, volume"),
        ("foo(close)", 0, "unknown function 'foo'; functions: abs, corr"),
        ("add(close, 1)", 0, "unknown function 'add' (write it with its symbol)"),
        ("mean + 1", 0, "'mean' is a function: call it as mean(x, n)"),
        ("1 + mean(close)", 14, "mean(x, n) takes 2 arguments, got 1: missing n"),
        ("mean(close, 5, 6)", 15, "mean(x, n) takes 2 arguments, got 3"),
        ("mean(close, m=5)", 12, "mean has no parameter 'm' (its parameters: x, n)"),
        ("mean(n=5, close)", 10, "a positional argument after a keyword argument"),
        ("mean(close, n=5, n=6)", 17, "'n' given twice"),
        ("if(close, 1, 0)", 3, "if's condition needs a comparison or a logical expression, not a number"),
        ("close > 1 and volume", 14, "'and' needs a comparison"),
        ("not close", 4, "'not' needs a comparison"),
        ("close < open < high", 13, "comparisons do not chain"),
        ("close +", 7, "found the end of the expression"),
        ("(close + 1", 10, "expected ')' to close the '(' at position 0"),
        ("mean(close, 5", 13, "to close the '(' at position 4"),
        ("close)", 5, "unexpected ')' after a complete expression"),
        ("close open", 6, "unexpected 'open'"),
        ("$close", 0, "fields are plain names (close, not $close)"),
        ("close & open", 6, "use 'and'"),
        ("close ** 2", 7, "expected a number, a name or '('"),
        ("5close", 0, "malformed number"),
        ("1.2.3", 0, "malformed number"),
        ("1e999", 0, "out of range"),
        ("", 0, "empty expression"),
        ("__import__('os')", 11, "unexpected character \"'\""),
    ],
)
def test_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, InvalidInput) and error.status_code == 422
    assert error.position == position and error.context["position"] == position, error.message
    assert error.message.startswith(f"at position {position}: ")
    assert fragment in error.message


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("(" * 500 + "close" + ")" * 500)
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("-" * 500 + "close")
    with pytest.raises(ExpressionError, match="expression nested more than 200 deep"):
        parse(" + ".join(["close"] * 5000))  # a flat chain is a deep tree
    deep: Expr = Name("close")
    for _ in range(5000):
        deep = Call("abs", (deep,))
    with pytest.raises(ExpressionError, match="nested more than 200 deep"):
        evaluate({"x": deep}, PANEL)
    parse(" + ".join(["close"] * 150))


def test_fields_are_the_callers() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'rsi14'"):
        parse("rsi14 / 100")
    expr = parse("rsi14 / 100", fields=BAR_FIELDS | {"rsi14"})
    assert fields_of(expr) == {"rsi14"}
    with pytest.raises(ExpressionError, match="valid names: close, open"):
        check(parse("close / open"), fields={"close", "open"}) and check(Name("high"), fields={"close", "open"})


def test_types_booleans_are_numbers_but_numbers_are_not_conditions() -> None:
    assert check(parse("close > open")) == "boolean"
    assert check(parse("close > open and not volume < 5")) == "boolean"
    assert check(parse("mean(close > ref(close, 1), 5)")) == "number"
    assert check(parse("if(close > open, close, open)")) == "number"
    assert check(parse("if(close > open, close > 1, open > 1)")) == "boolean"
    with pytest.raises(ExpressionError, match="at position 3: if's condition"):
        check(Call("if", (Name("close", 3), Number(1), Number(0))))


# -- static analysis ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bars"),
    [
        ("close", 0),
        ("1 + 2", 0),
        ("ref(close, 3)", 3),
        ("mean(close, 5)", 4),
        ("mean(ref(close, 3), 5)", 7),
        ("ref(mean(close, 5), 3)", 7),
        ("delta(mean(close, 3), 2)", 4),
        ("corr(ref(close, 2), mean(volume, 10), 5)", 13),
        ("mean(close, 20) / ref(close, 30)", 30),
        ("if(close > ref(close, 2), mean(close, 3), 0)", 2),
        ("quantile(ref(close, 1), 5, 0.5)", 5),
        ("std(std(close, 3), 3)", 4),
        ("ewm(close, 10)", 9),
        ("cs_rank(ref(close, 1))", 1),
        ("slope(log(volume + 1), 10)", 9),
    ],
)
def test_warmup_by_hand(text: str, bars: int) -> None:
    assert warmup(parse(text)) == bars


def test_flags_and_fields() -> None:
    assert fields_of(parse("(high - low) / mean(close, 5) + 1")) == {"high", "low", "close"}
    assert fields_of(parse("1 + 2")) == frozenset()
    assert is_recursive(parse("mean(ewm(close, 5), 3)")) and not is_recursive(parse("mean(close, 3)"))
    assert is_cross_sectional(parse("ref(cs_rank(close), 1)")) and not is_cross_sectional(parse("rank(close, 5)"))


# -- operators against independent computations -----------------------------------------


ROLLING_CASES = {
    "mean(close, 5)": lambda f: f("close").rolling(5).mean(),
    "sum(volume, 3)": lambda f: f("volume").rolling(3).sum(),
    "std(close, 10)": lambda f: f("close").rolling(10).std(ddof=1),
    "min(low, 7)": lambda f: f("low").rolling(7).min(),
    "max(high, 7)": lambda f: f("high").rolling(7).max(),
    "ref(close, 3)": lambda f: f("close").shift(3),
    "delta(close, 2)": lambda f: f("close") - f("close").shift(2),
    "rank(close, 6)": lambda f: window_apply(f("close"), 6, lambda w: stats.percentileofscore(w, w[-1], kind="rank") / 100),
    "quantile(close, 6, 0.8)": lambda f: window_apply(f("close"), 6, lambda w: np.quantile(w, 0.8)),
    "quantile(close, 5, 0)": lambda f: f("close").rolling(5).min(),
    "idxmax(high, 5)": lambda f: window_apply(f("high"), 5, lambda w: np.argmax(w) + 1),
    "idxmin(low, 8)": lambda f: window_apply(f("low"), 8, lambda w: np.argmin(w) + 1),
    "slope(close, 10)": lambda f: window_apply(f("close"), 10, lambda w: stats.linregress(np.arange(1, 11), w).slope),
    "rsquare(close, 10)": lambda f: window_apply(
        f("close"), 10, lambda w: stats.linregress(np.arange(1, 11), w).rvalue ** 2
    ),
    "resi(close, 10)": lambda f: window_apply(
        f("close"), 10, lambda w: w[-1] - (lambda r: r.intercept + r.slope * 10)(stats.linregress(np.arange(1, 11), w))
    ),
    "corr(close, log(volume), 8)": lambda f: f("close").rolling(8).corr(np.log(f("volume"))),
    "cov(close, volume, 4)": lambda f: window_apply(
        pd.Series(np.arange(len(f("close"))), dtype=float), 4,
        lambda i, c=f("close").to_numpy(), v=f("volume").to_numpy(): np.cov(c[i.astype(int)], v[i.astype(int)])[0, 1],
    ),
    "ewm(close, 4)": lambda f: f("close").ewm(span=4, adjust=True).mean().where(np.arange(len(f("close"))) >= 3),
    "mean(ref(close, 3), 5)": lambda f: f("close").shift(3).rolling(5).mean(),
}


@pytest.mark.parametrize("text", list(ROLLING_CASES))
def test_time_series_operators_per_symbol(text: str) -> None:
    assert_same(value(text), per_symbol(PANEL, ROLLING_CASES[text]))


@pytest.mark.parametrize("text", list(ROLLING_CASES))
def test_time_series_values_start_after_warmup(text: str) -> None:
    result = value(text)
    bars = warmup(parse(text))
    assert np.isnan(result[PANEL.bar_numbers < bars]).all()
    assert not np.isnan(result[PANEL.bar_numbers >= bars]).any()  # positive, varied data


def test_a_nan_in_a_window_gives_nan_for_that_window_only() -> None:
    fields = dict(PANEL.fields)
    close = fields["close"].copy()
    close[PANEL.rows("A").start + 30] = np.nan
    fields["close"] = close
    panel = PanelData(PANEL.symbols, PANEL.offsets, PANEL.timestamps, fields)
    for text in ("mean(close, 5)", "std(close, 5)", "rank(close, 5)", "quantile(close, 5, 0.5)", "idxmax(close, 5)",
                 "slope(close, 5)", "resi(close, 5)", "rsquare(close, 5)", "corr(close, volume, 5)", "max(close, 5)"):
        result = value(text, panel)[PANEL.rows("A")]
        assert np.isnan(result[30:35]).all(), text
        assert not np.isnan(result[[29, 35]]).any(), text


def test_ewm_skips_a_nan_bar_and_goes_on() -> None:
    fields = dict(PANEL.fields)
    close = fields["close"].copy()
    close[PANEL.rows("A").start + 30] = np.nan
    panel = PanelData(PANEL.symbols, PANEL.offsets, PANEL.timestamps, {**fields, "close": close})
    expected = per_symbol(panel, lambda f: f("close").ewm(span=3, adjust=True, min_periods=3).mean().where(f("close").notna()))
    result = value("ewm(close, 3)", panel)
    assert_same(result, expected)
    assert np.isnan(result[PANEL.rows("A")][30]) and not np.isnan(result[PANEL.rows("A")][31])


TIES = PanelData.from_arrays(
    ["T", "U"],
    [np.arange(40) * DAY, np.arange(3, 33) * DAY],
    {"close": [np.random.default_rng(1).integers(0, 4, 40).astype(float), np.repeat([2.0, 1.0, 3.0], 10)]},
)
TIE_CASES = {
    "idxmax(close, 6)": lambda w: np.argmax(w) + 1,  # numpy's argmax: the first maximum
    "idxmin(close, 7)": lambda w: np.argmin(w) + 1,
    "rank(close, 6)": lambda w: stats.rankdata(w, method="average")[-1] / len(w),
    "quantile(close, 6, 0.3)": lambda w: np.quantile(w, 0.3),
    "max(close, 5)": np.max,
}


@pytest.mark.parametrize("text", list(TIE_CASES))
def test_windows_with_ties(text: str) -> None:
    n = int(text.split(", ")[1].rstrip(")"))
    expected = per_symbol(TIES, lambda f: window_apply(f("close"), n, TIE_CASES[text]))
    assert_same(value(text, TIES), expected, rtol=1e-15)


ELEMENTWISE_CASES = {
    "(close - open) / open": lambda f: (f("close") - f("open")) / f("open"),
    "-close * 2 + 1": lambda f: -f("close") * 2 + 1,
    "log(volume)": lambda f: np.log(f("volume")),
    "abs(close - open)": lambda f: (f("close") - f("open")).abs(),
    "sign(close - open)": lambda f: np.sign(f("close") - f("open")),
    "greater(open, close)": lambda f: np.maximum(f("open"), f("close")),
    "less(open, close)": lambda f: np.minimum(f("open"), f("close")),
    "close > open": lambda f: (f("close") > f("open")).astype(float),
    "close <= open": lambda f: (f("close") <= f("open")).astype(float),
    "close == close": lambda f: f("close") * 0 + 1,
    "close != close": lambda f: f("close") * 0,
    "close > open and volume > 20000": lambda f: ((f("close") > f("open")) & (f("volume") > 20000)).astype(float),
    "close > open or volume > 20000": lambda f: ((f("close") > f("open")) | (f("volume") > 20000)).astype(float),
    "not close > open": lambda f: (f("close") <= f("open")).astype(float),
    "if(close > open, high, low)": lambda f: f("high").where(f("close") > f("open"), f("low")),
    "close > ref(close, 1)": lambda f: (f("close") > f("close").shift(1)).astype(float).where(f("close").shift(1).notna()),
}


@pytest.mark.parametrize("text", list(ELEMENTWISE_CASES))
def test_elementwise_operators(text: str) -> None:
    assert_same(value(text), per_symbol(PANEL, ELEMENTWISE_CASES[text]), rtol=1e-15, atol=0)


def test_if_starts_when_all_its_inputs_can() -> None:
    """The branch not taken does not make a value appear before warmup(if(...))."""
    result = value("if(close > 0, close, ref(close, 3))")
    np.testing.assert_array_equal(np.isnan(result), PANEL.bar_numbers < 3)
    np.testing.assert_array_equal(result[PANEL.bar_numbers >= 3], PANEL.fields["close"][PANEL.bar_numbers >= 3])


def test_a_constant_expression_fills_every_row() -> None:
    np.testing.assert_array_equal(value("1 + 2 * 3"), np.full(PANEL.n_rows, 7.0))
    np.testing.assert_array_equal(value("mean(2, 3)")[PANEL.bar_numbers >= 2], 2.0)


# -- cross-sectional operators -----------------------------------------------------------


def long_frame(panel: PanelData, x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": panel.timestamps,
        "symbol": np.asarray(panel.symbols)[panel.symbol_codes],
        "x": x,
    })


def test_cs_rank_per_timestamp() -> None:
    x = value("close / ref(close, 1)")
    frame = long_frame(PANEL, x)
    by_date = frame.groupby("timestamp")["x"]
    rank, count = by_date.rank(method="average"), by_date.transform("count")
    expected = ((rank - 1) / (count - 1)).where(count > 1, 0.5).where(frame["x"].notna())
    assert_same(value("cs_rank(close / ref(close, 1))"), expected.to_numpy(), rtol=1e-15)


def test_cs_zscore_and_demean_per_timestamp() -> None:
    frame = long_frame(PANEL, PANEL.fields["close"])
    by_date = frame.groupby("timestamp")["x"]
    mean, std = by_date.transform("mean"), by_date.transform("std")
    z = ((frame["x"] - mean) / std).where(std > 0)
    assert_same(value("cs_zscore(close)"), z.to_numpy())
    assert_same(value("cs_demean(close)"), (frame["x"] - mean).to_numpy())
    assert (by_date.transform("count") == 1).any()  # the panel has lone dates: covered


@pytest.mark.parametrize("operator", ["rank", "zscore", "demean"])
def test_cs_operators_agree_with_the_cross_sectional_plugins(operator: str) -> None:
    """The language's cs_* and the cross_sectional.* feature plugins mean the same thing."""
    x = value("close / ref(close, 2) - 1")
    frame = long_frame(PANEL, x).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))
    expected = apply_cross_section(frame, operator, "x")["x"].to_numpy()
    assert_same(value(f"cs_{operator}(close / ref(close, 2) - 1)"), expected)


def test_cs_operators_ignore_non_finite_values() -> None:
    result = value("cs_rank(if(close > 25, 1 / 0, close))")
    assert np.isnan(result[PANEL.fields["close"] > 25]).all()


# -- symbols stay apart ------------------------------------------------------------------


ALL_TIME_SERIES = [
    "mean(close, 5)", "sum(close, 5)", "std(close, 5)", "min(close, 5)", "max(close, 5)", "rank(close, 5)",
    "quantile(close, 5, 0.3)", "idxmax(close, 5)", "idxmin(close, 5)", "slope(close, 5)", "rsquare(close, 5)",
    "resi(close, 5)", "corr(close, volume, 5)", "cov(close, volume, 5)", "ewm(close, 5)", "ref(close, 2)",
    "delta(close, 2)",
]


@pytest.mark.parametrize("text", ALL_TIME_SERIES)
def test_a_symbol_never_sees_another(text: str) -> None:
    """Blowing up symbol A (x 1e9, and NaN holes) changes none of B's or C's bits: no
    window, running sum or recursion crosses from one symbol into the next."""
    fields = {name: values.copy() for name, values in PANEL.fields.items()}
    rows = PANEL.rows("A")
    for values in fields.values():
        values[rows] *= 1e9
        values[rows.start + 5] = np.nan
    other = PanelData(PANEL.symbols, PANEL.offsets, PANEL.timestamps, fields)
    before, after = value(text), value(text, other)
    np.testing.assert_array_equal(before[rows.stop:], after[rows.stop:])


@pytest.mark.parametrize("text", ALL_TIME_SERIES[:6] + ["corr(close, volume, 5)", "ewm(close, 3)", "idxmax(close, 4)"])
def test_one_symbol_is_the_same_as_in_a_panel(text: str) -> None:
    alone = PanelData.from_arrays(
        ["B"], [PANEL.timestamps[PANEL.rows("B")]], {f: [PANEL.fields[f][PANEL.rows("B")]] for f in FIELDS}
    )
    np.testing.assert_allclose(value(text, alone), value(text)[PANEL.rows("B")], rtol=1e-12, equal_nan=True)


# -- common subexpressions ---------------------------------------------------------------


NAMED = {
    "a": "mean(close, 5) / close",
    "b": "mean( close , 5.0 ) - close",
    "c": "std(close, 5) / mean(close, 5)",
    "d": "mean(close, n=5)",
}


def test_the_plan_holds_each_subexpression_once() -> None:
    steps = plan({name: parse(text) for name, text in NAMED.items()}).steps
    texts = [step.text for step in steps]
    assert texts.count("mean(close, 5)") == 1
    assert len(texts) == len(set(texts))
    assert texts.index("mean(close, 5)") < texts.index("mean(close, 5) / close")


def test_a_shared_subexpression_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    mean = kernels.KERNELS["mean"]

    def counting(panel, x, n):
        calls.append(n)
        return mean(panel, x, n)

    monkeypatch.setitem(kernels.KERNELS, "mean", counting)
    out = evaluate(NAMED, PANEL)
    assert calls == [5]
    close = PANEL.fields["close"]
    expected_mean = per_symbol(PANEL, lambda f: f("close").rolling(5).mean())
    assert_same(out["a"], expected_mean / close)
    assert_same(out["b"], expected_mean - close)
    assert_same(out["d"], expected_mean)


def test_outputs_are_fresh_arrays() -> None:
    out = evaluate({"x": "close", "y": "close", "m": "mean(close, 3)", "n": "mean(close, 3)"}, PANEL)
    assert out["x"] is not PANEL.fields["close"] and out["x"] is not out["y"] and out["m"] is not out["n"]
    out["x"][:] = 0
    assert PANEL.fields["close"][0] != 0
    assert out["m"].flags.writeable


def test_evaluate_checks_names_against_the_panel() -> None:
    panel = PanelData(PANEL.symbols, PANEL.offsets, PANEL.timestamps, {"close": PANEL.fields["close"]})
    with pytest.raises(ExpressionError, match="at position 8: unknown name 'volume'; valid names: close"):
        evaluate({"x": "close / volume"}, panel)
    with pytest.raises(ExpressionError, match="unknown name 'volume'"):
        evaluate({"x": parse("volume")}, panel)


# -- the panel ---------------------------------------------------------------------------


def test_to_frame_indexes_by_timestamp_and_symbol() -> None:
    out = evaluate({"ma": "mean(close, 3)", "c": "close"}, PANEL)
    frame = PANEL.to_frame(out)
    assert list(frame.index.names) == ["timestamp", "symbol"] and list(frame.columns) == ["ma", "c"]
    assert frame.index.is_monotonic_increasing and str(frame.index.levels[0].tz) == "UTC"
    row = frame.loc[(pd.Timestamp(25 * DAY, tz="UTC"), "C")]
    assert row["c"] == PANEL.fields["close"][PANEL.rows("C")][5]
    unsorted = PANEL.to_frame(out, sort=False)
    np.testing.assert_array_equal(unsorted["c"].to_numpy(), PANEL.fields["close"])


def test_panel_constructors_agree() -> None:
    frames = {
        s: pd.DataFrame({f: PANEL.fields[f][PANEL.rows(s)] for f in FIELDS},
                        index=pd.to_datetime(PANEL.timestamps[PANEL.rows(s)], utc=True))
        for s in PANEL.symbols
    }
    from_frames = PanelData.from_frames(frames)
    long = pd.concat(frames, names=["symbol", "timestamp"]).reset_index().sample(frac=1, random_state=0)
    from_long = PanelData.from_long(long)
    for panel in (from_frames, from_long):
        assert set(panel.symbols) == set(PANEL.symbols)
        for s in PANEL.symbols:
            np.testing.assert_array_equal(panel.timestamps[panel.rows(s)], PANEL.timestamps[PANEL.rows(s)])
            np.testing.assert_array_equal(panel.fields["close"][panel.rows(s)], PANEL.fields["close"][PANEL.rows(s)])


def test_panel_refuses_unsorted_or_mismatched_rows() -> None:
    with pytest.raises(InvalidInput, match="symbol 'B': timestamps must be strictly increasing"):
        PanelData.from_arrays(["A", "B"], [np.array([5, 6]), np.array([3, 2])], {"close": [np.ones(2), np.ones(2)]})
    with pytest.raises(InvalidInput, match="strictly increasing"):
        PanelData.from_arrays(["A"], [np.array([1, 1])], {"close": [np.ones(2)]})
    with pytest.raises(InvalidInput, match="has \\(3,\\) values for 2 rows"):
        PanelData.from_arrays(["A"], [np.array([1, 2])], {"close": [np.ones(3)]})
    with pytest.raises(InvalidInput, match="distinct"):
        PanelData.from_arrays(["A", "A"], [np.array([1]), np.array([1])], {"close": [np.ones(1), np.ones(1)]})
    # a later symbol may start before an earlier one ends, and a symbol may be empty
    panel = PanelData.from_arrays(["A", "E", "B"], [np.array([5, 6]), np.array([], np.int64), np.array([1, 2])],
                                  {"close": [np.ones(2), np.ones(0), np.ones(2)]})
    assert evaluate({"x": "mean(close, 2)"}, panel)["x"].tolist()[1::2] == [1.0, 1.0]
