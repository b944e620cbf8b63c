"""Which parameters a study's score depended on: Optuna's fANOVA importance over its complete
trials (the figure Optuna's own dashboard shows), for the web view's study page and any client."""

from __future__ import annotations

import warnings

from alphaforge.context import Context
from alphaforge.schemas.importance import ParamImportance
from alphaforge.tuning import catalog, studies

#: Seeds fANOVA's random forest: the same trials give the same importances.
SEED = 0


def param_importance(ctx: Context, study_id: int) -> ParamImportance:
    """Importances summing to 1 over the sampled parameters (fixed ones never vary); empty
    with a note when they cannot be told (fewer than two complete trials, nothing sampled)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    summary = catalog.get_study(ctx, study_id)  # 404 for an unknown or deleted study
    study = optuna.load_study(study_name=summary.study_name, storage=studies.storage(ctx.settings.resolved_optuna_storage_url))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    base = {"study_id": study_id, "study_name": summary.study_name, "metric": summary.metric, "n_trials": len(complete)}
    if len(complete) < 2:
        return ParamImportance(**base, importances={}, note="needs two or more complete trials")
    try:
        with warnings.catch_warnings():  # fANOVA is marked experimental in some Optuna versions
            warnings.simplefilter("ignore")
            values = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=SEED))
    except (ValueError, RuntimeError) as exc:  # e.g. a search space that changed between trials
        return ParamImportance(**base, importances={}, note=f"cannot be computed: {exc}")
    note = None if values else "no sampled parameter varied across the complete trials"
    return ParamImportance(**base, importances={k: float(v) for k, v in values.items()}, note=note)
