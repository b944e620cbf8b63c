"""What a study keeps in Optuna's storage besides its trials' values (the attribute names
the tuner writes and the catalog reads), and a trial as the API shows it. Apart from the
tuner so the read side (``catalog``, warm starts) does not import the tuner (an import circle).
"""

from __future__ import annotations

from typing import Any

from alphaforge.schemas.tuning import TrialRead

# Study and trial user attributes.
PARENT_RUN = "mlflow_parent_run_id"
STARTED_AT = "started_at"
STOP_REASON = "stop_reason"
RESULT = "result"
SURPLUS = "surplus"
#: The request that created the study and when (what ``GET /studies`` summarises from).
CONFIG = "alphaforge"
#: Prefix of the study attributes mapping trial numbers to MLflow child runs (``_TrialLogger``).
MLFLOW_RUNS = "mlflow_runs"


def mlflow_runs(study_attrs: dict[str, Any]) -> dict[int, str]:
    """{trial number: MLflow child run id} from a study's ``mlflow_runs:*`` attributes."""
    return {int(n): run for key, ids in study_attrs.items() if key.startswith(f"{MLFLOW_RUNS}:") for n, run in ids.items()}


def trial_read(
    number: int, state: str, value: float | None, duration_s: float | None, result: dict[str, Any] | None,
    params: dict[str, Any], fixed: dict[str, Any], runs: dict[int, str],
) -> TrialRead:
    """One trial as the API shows it, from its stored parts (a FrozenTrial's or a page's rows)
    and the study's MLflow child runs (``mlflow_runs``)."""
    result = result or {}
    return TrialRead(
        number=number,
        state=state,  # type: ignore[arg-type]
        params=result.get("params") or {**params, **fixed},
        score=value if state in ("COMPLETE", "PRUNED") else None,
        folds_evaluated=len(result.get("folds") or []),
        folds=result.get("folds") or [],
        metrics=result.get("summary"),
        duration_s=duration_s,
        error=result.get("error"),
        mlflow_run_id=result.get("mlflow_run_id") or runs.get(number),
        out_of_fold_uri=result.get("out_of_fold_uri"),
        net_sharpe=result.get("net_sharpe") if state == "COMPLETE" else None,
    )
