"""The fold-wise median pruner compares scores after the same folds."""

from __future__ import annotations

import optuna
import pytest

from alphaforge.tuning.pruning import FoldMedianPruner

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
