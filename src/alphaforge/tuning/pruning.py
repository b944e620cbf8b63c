"""Fold-wise pruning for cross-validated trials.

A trial reports its score so far (the metric over the folds evaluated) after each fold.
Optuna's ``MedianPruner`` compares the trial's *best* value over its steps with the median
of other trials at the current step. With a running CV score that best value is usually
the first fold's, and when the first fold is a calmer period than the later ones (GSPC
before 2008) it beats every median, so no trial is ever pruned. This pruner compares the
score *at* the current step with the median of the completed trials' scores at that same
step: the same folds on both sides.

The completed trials are read once per trial (at its first check), not once per fold: each
read is a query to the study's storage, and a trial that completes meanwhile in another
worker would only join the comparison a few folds later.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class FoldMedianPruner(BasePruner):
    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 1) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self._completed: tuple[int, list[FrozenTrial]] | None = None  # (trial number, completed trials)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        if self._completed is None or self._completed[0] != trial.number:
            self._completed = (trial.number, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        completed = self._completed[1]
        if len(completed) < self.n_startup_trials:
            return False
        others = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        if not others:
            return False
        median, value = statistics.median(others), trial.intermediate_values[step]
        return value > median if study.direction == StudyDirection.MINIMIZE else value < median
