"""The parameter importance of a tuning study (GET /api/v1/studies/{id}/importance)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ParamImportance(BaseModel):
    study_id: int
    study_name: str
    metric: str | None
    method: str = Field("fanova", description="Optuna's fANOVA evaluator (seeded): the share of the score's variance "
                        "each parameter explains")
    n_trials: int = Field(description="Complete trials the importances were computed from")
    importances: dict[str, float] = Field(description="{parameter: importance}, largest first, summing to 1")
    note: str | None = Field(None, description="Why importances is empty")
