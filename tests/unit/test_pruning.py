"""The fold-wise pruner compares scores after the same folds: with the median, and with the
tuner's default share (the best 40 % from the first fold on)."""

from __future__ import annotations

import optuna
import pytest

from alphaforge.tuning.pruning import FoldMedianPruner
from alphaforge.tuning.tuner import FOLD_RULES

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Running CV scores after folds 0, 1, 2: the first fold is calm (low error), later ones are not.
COMPLETED = [[1.0, 5.0, 5.0], [1.2, 4.0, 4.5], [0.9, 6.0, 5.5]]


def _study(pruner: optuna.pruners.BasePruner, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=pruner)
    for scores in COMPLETED:
        trial = study.ask()
        for step, score in enumerate(scores):
            trial.report(score if direction == "minimize" else -score, step)
        study.tell(trial, scores[-1] if direction == "minimize" else -scores[-1])
    return study


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_a_trial_worse_than_the_median_after_the_same_fold_is_pruned(direction: str) -> None:
    sign = 1 if direction == "minimize" else -1
    study = _study(FoldMedianPruner(n_startup_trials=3, n_warmup_steps=1), direction)
    trial = study.ask()
    trial.report(sign * 0.5, 0)  # a better first fold than anyone...
    assert not trial.should_prune()  # (warm-up step)
    trial.report(sign * 5.5, 1)  # ...but worse than the median (5.0) after fold 1
    assert trial.should_prune()

    good = study.ask()
    good.report(sign * 0.5, 0)
    good.report(sign * 4.5, 1)  # better than the median after fold 1
    assert not good.should_prune()


def test_optunas_median_pruner_would_keep_that_trial() -> None:
    """Why the custom pruner exists: MedianPruner compares the trial's best step (fold 0)."""
    study = _study(optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    trial = study.ask()
    trial.report(0.5, 0)
    trial.report(5.5, 1)
    assert not trial.should_prune()


def test_no_pruning_before_enough_completed_trials() -> None:
    study = _study(FoldMedianPruner(n_startup_trials=4, n_warmup_steps=1))
    trial = study.ask()
    trial.report(0.5, 0)
    trial.report(100.0, 1)
    assert not trial.should_prune()


def _default_rule(n_startup_trials: int = 3) -> FoldMedianPruner:
    """The tuner's default fold-wise rule (pruner="percentile") as configured."""
    share, first_fold = FOLD_RULES["percentile"]
    return FoldMedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=first_fold, percentile=share)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_default_rule_keeps_only_the_best_40_percent_after_each_fold(direction: str) -> None:
    sign = 1 if direction == "minimize" else -1
    study = _study(_default_rule(), direction)
    # after fold 1 the completed scores are 4.0, 5.0, 6.0: the best 40 % end at 4.8 (linear)
    within_median = study.ask()
    within_median.report(sign * 0.5, 0)
    within_median.report(sign * 4.9, 1)  # better than the median (5.0), outside the best 40 %
    assert within_median.should_prune()
    median_study = _study(FoldMedianPruner(n_startup_trials=3, n_warmup_steps=1), direction)
    kept_by_median = median_study.ask()
    kept_by_median.report(sign * 0.5, 0)
    kept_by_median.report(sign * 4.9, 1)
    assert not kept_by_median.should_prune()
    good = study.ask()
    good.report(sign * 0.5, 0)
    good.report(sign * 4.7, 1)
    assert not good.should_prune()


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_default_rule_may_stop_a_trial_after_its_first_fold(direction: str) -> None:
    sign = 1 if direction == "minimize" else -1
    # after fold 0 the completed scores are 0.9, 1.0, 1.2: the best 40 % end at 0.98
    bad = _study(_default_rule(), direction).ask()
    bad.report(sign * 1.05, 0)
    assert bad.should_prune()
    good = _study(_default_rule(), direction).ask()
    good.report(sign * 0.95, 0)
    assert not good.should_prune()
    # the median rule never stops a trial on its first fold
    median = _study(FoldMedianPruner(n_startup_trials=3, n_warmup_steps=1), direction).ask()
    median.report(sign * 100.0, 0)
    assert not median.should_prune()


def test_the_default_rule_waits_for_enough_completed_trials() -> None:
    trial = _study(_default_rule(n_startup_trials=4)).ask()
    trial.report(100.0, 0)
    assert not trial.should_prune()


def test_a_share_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError):
        FoldMedianPruner(percentile=0.0)
