"""Walk-forward splitter: leakage invariants (property tests), hand-computed folds, refusals."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from alphaforge.errors import InvalidInput
from alphaforge.evaluation.cv import Fold, fold_spans, make_folds


def violations(
    folds: list[Fold],
    *,
    n: int,
    method: str,
    n_splits: int,
    test_len: int,
    min_rows: int,
    horizon: int,
    embargo: int,
) -> list[str]:
    """Every broken invariant, described. Written without reference to the splitter's code."""
    found: list[str] = []
    if len(folds) != n_splits:
        found.append(f"{len(folds)} folds, expected {n_splits}")
    for k, fold in enumerate(folds):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        if fold.index != k:
            found.append(f"fold {k} has index {fold.index}")
        if len(test) != test_len or not np.array_equal(np.diff(test), np.ones(len(test) - 1)):
            found.append(f"fold {k}: test is not {test_len} contiguous rows")
        if len(test) and test[0] != n - (n_splits - k) * test_len:
            found.append(f"fold {k}: test starts at {test[0]}, not back-anchored")
        if len(train) and (np.any(np.diff(train) <= 0) or train[0] < 0):
            found.append(f"fold {k}: train rows not sorted/unique/non-negative")
        if len(train) < min_rows:
            found.append(f"fold {k}: {len(train)} train rows < {min_rows}")
        if len(train) and len(test) and train.max() >= test.min():
            found.append(f"fold {k}: train row {train.max()} not before test start {test.min()}")
        # label windows [i, i+h] and [j, j+h] intersect iff max(i, j) <= min(i, j) + h
        if len(train) and len(test):
            i, j = train[:, None], test[None, :]
            if np.any(np.maximum(i, j) <= np.minimum(i, j) + horizon):
                found.append(f"fold {k}: a training label window overlaps a test label window")
        for earlier in folds[:k]:
            end = int(np.asarray(earlier.test).max()) + 1
            hit = train[(train >= end) & (train < end + embargo)]
            if len(hit):
                found.append(f"fold {k}: rows {hit.tolist()} in the embargo after fold {earlier.index}")
        if k:
            previous = np.asarray(folds[k - 1].test)
            if len(previous) and len(test) and previous.max() >= test.min():
                found.append(f"fold {k}: test overlaps or precedes fold {k - 1}")
    sizes = [len(f.train) for f in folds]
    if method == "rolling" and len(set(sizes)) > 1:
        found.append(f"rolling folds differ in train length: {sizes}")
    if method == "expanding":
        for a, b in zip(folds, folds[1:]):
            if not set(a.train.tolist()) <= set(b.train.tolist()):
                found.append(f"expanding fold {b.index} does not contain fold {a.index}'s train set")
    return found


@st.composite
def configs(draw: st.DrawFn) -> dict:
    horizon = draw(st.integers(1, 20))
    return {
        "n": draw(st.integers(30, 3000)),
        "method": draw(st.sampled_from(["rolling", "expanding"])),
        "n_splits": draw(st.integers(1, 10)),
        # thousandths, so the expected row counts can be computed exactly with Fraction
        "test_permille": draw(st.integers(1, 400)),
        "min_train_permille": draw(st.integers(1, 600)),
        "horizon": horizon,
        "purge": draw(st.none() | st.integers(horizon, horizon + 15)),
        "embargo": draw(st.integers(0, 10)),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_folds_never_leak(cfg: dict) -> None:
    n, h = cfg["n"], cfg["horizon"]
    test_len = max(1, int(Fraction(cfg["test_permille"], 1000) * n))
    min_rows = max(1, int(Fraction(cfg["min_train_permille"], 1000) * n))
    purge = h if cfg["purge"] is None else cfg["purge"]
    feasible = cfg["n_splits"] * test_len < n and n - cfg["n_splits"] * test_len - purge >= min_rows
    try:
        folds = make_folds(
            n,
            method=cfg["method"],
            n_splits=cfg["n_splits"],
            test_size=cfg["test_permille"] / 1000,
            min_train_size=cfg["min_train_permille"] / 1000,
            horizon=h,
            purge=cfg["purge"],
            embargo=cfg["embargo"],
        )
    except InvalidInput as exc:
        note(exc.message)
        assert not feasible, f"feasible config refused: {exc.message}"
        assert exc.status_code == 422
        return
    assert feasible, "infeasible config accepted"
    found = violations(
        folds,
        n=n,
        method=cfg["method"],
        n_splits=cfg["n_splits"],
        test_len=test_len,
        min_rows=min_rows,
        horizon=h,
        embargo=cfg["embargo"],
    )
    assert not found, found


def test_property_checker_catches_leakage() -> None:
    """The invariant checker is not vacuous: unpurged or embargo-breaking folds fail it."""
    args = dict(n=40, method="expanding", n_splits=3, test_len=5, min_rows=10, embargo=2)
    # purge 1 is right for horizon 1 but leaks for horizon 5
    short = make_folds(40, method="expanding", n_splits=3, test_size=0.125, min_train_size=0.25, horizon=1)
    assert not violations(short, horizon=1, **{**args, "embargo": 0})
    assert any("label window" in v for v in violations(short, horizon=5, **{**args, "embargo": 0}))
    # the upstream layout (§8.5): train right up to the test window, no purge
    leaky = [Fold(index=0, train=np.arange(0, 25), test=np.arange(25, 30))]
    found = violations(leaky, horizon=2, **{**args, "n_splits": 1, "n": 30})
    assert any("label window" in v for v in found)
    # a row inside an earlier fold's embargo
    good = make_folds(40, method="expanding", n_splits=3, test_size=0.125, min_train_size=0.25, horizon=2, embargo=2)
    assert not violations(good, horizon=2, **args)
    tampered = good[:2] + [Fold(index=2, train=np.union1d(good[2].train, [30]), test=good[2].test)]
    assert any("embargo" in v for v in violations(tampered, horizon=2, **args))
    # overlapping test windows
    overlapping = [good[0], Fold(index=1, train=good[1].train, test=np.arange(27, 32))]
    assert violations(overlapping, horizon=2, **{**args, "n_splits": 2})


# Hand-computed case: n=40, test_size=1/8 -> 5 test rows, 3 folds -> tests [25,30), [30,35),
# [35,40); horizon 2, purge 2 -> train before 23 / 28 / 33; embargo 2 removes rows 30, 31
# (after fold 0's window, ending at 30) from fold 2; rows 35, 36 affect no fold.
HAND = dict(method="expanding", n_splits=3, test_size=0.125, min_train_size=0.25, horizon=2, embargo=2)


def test_expanding_hand_computed() -> None:
    folds = make_folds(40, **HAND)
    assert [f.index for f in folds] == [0, 1, 2]
    assert [f.test.tolist() for f in folds] == [[25, 26, 27, 28, 29], [30, 31, 32, 33, 34], [35, 36, 37, 38, 39]]
    assert folds[0].train.tolist() == list(range(0, 23))
    assert folds[1].train.tolist() == list(range(0, 28))
    assert folds[2].train.tolist() == list(range(0, 30)) + [32]


def test_rolling_hand_computed() -> None:
    folds = make_folds(40, **{**HAND, "method": "rolling"})
    assert folds[0].train.tolist() == list(range(0, 23))  # L = 23
    assert folds[1].train.tolist() == list(range(5, 28))  # the last 23 of 0..27
    assert folds[2].train.tolist() == list(range(8, 30)) + [32]  # 22 rows + row 32, skipping 30-31
    assert {len(f.train) for f in folds} == {23}


def test_explicit_longer_purge_and_default() -> None:
    folds = make_folds(40, **{**HAND, "embargo": 0, "purge": 4})
    assert [f.train.tolist() for f in folds] == [list(range(21)), list(range(26)), list(range(31))]
    default = make_folds(40, **{**HAND, "embargo": 0})
    assert default[0].train.tolist() == list(range(23))  # purge defaults to the horizon


def test_single_fold_takes_the_last_rows() -> None:
    (fold,) = make_folds(100, method="rolling", n_splits=1, test_size=0.2, min_train_size=0.5, horizon=3)
    assert fold.test.tolist() == list(range(80, 100))
    assert fold.train.tolist() == list(range(77))


def test_fraction_rounding_is_not_off_by_one() -> None:
    # 180 * 0.35 is 62.99999999999999 in binary floating point
    (fold,) = make_folds(180, method="expanding", n_splits=1, test_size=0.35, min_train_size=0.1, horizon=1)
    assert len(fold.test) == 63


def test_purge_shorter_than_horizon_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        make_folds(200, method="expanding", n_splits=3, test_size=0.1, min_train_size=0.2, horizon=5, purge=2)
    assert info.value.status_code == 422
    message = info.value.message
    assert "purge=2" in message and "horizon 5" in message
    assert "test window" in message and "purge >= 5" in message


def test_too_few_training_rows_message() -> None:
    with pytest.raises(InvalidInput) as info:
        make_folds(120, method="rolling", n_splits=5, test_size=0.15, min_train_size=0.3, horizon=5)
    assert info.value.message == (
        "n=120 rows, 5 folds × 18 test rows and purge 5 leave 25 training rows for the first fold; "
        "min_train_size=0.3 needs 36: lower n_splits or test_size, or use a longer range"
    )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"n_splits": 0}, "n_splits must be at least 1"),
        ({"test_size": 0.0}, "test_size"),
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": float("nan")}, "test_size"),
        ({"min_train_size": 0.0}, "min_train_size"),  # as the request schema: gt=0
        ({"min_train_size": 1.0}, "min_train_size"),
        ({"horizon": 0}, "horizon must be at least 1"),
        ({"embargo": -1}, "embargo must be at least 0"),
        ({"method": "random"}, "method"),
        ({"n_splits": 10, "test_size": 0.1}, "leaving none to train on"),
        ({"n_splits": 2.5}, "n_splits must be an integer"),
    ],
)
def test_impossible_configurations_are_422(overrides: dict, fragment: str) -> None:
    args = dict(method="expanding", n_splits=3, test_size=0.1, min_train_size=0.2, horizon=2)
    with pytest.raises(InvalidInput) as info:
        make_folds(100, **{**args, **overrides})
    assert info.value.status_code == 422
    assert fragment in info.value.message


def test_fold_spans() -> None:
    stamps = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC")
    folds = make_folds(40, **HAND)
    assert fold_spans(folds[2], stamps) == {
        "train_start": pd.Timestamp("2024-01-01", tz="UTC"),
        "train_end": pd.Timestamp("2024-02-02", tz="UTC"),  # row 32
        "test_start": pd.Timestamp("2024-02-05", tz="UTC"),  # row 35
        "test_end": pd.Timestamp("2024-02-09", tz="UTC"),  # row 39
        "n_train": 31,
        "n_test": 5,
    }
    assert fold_spans(folds[0], stamps.tz_localize(None).to_numpy())["test_start"] == np.datetime64("2024-01-26")
    with pytest.raises(ValueError):
        fold_spans(folds[2], stamps[:30])
