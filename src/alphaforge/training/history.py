"""A model's last cross-validation, read back from the task that trained it.

The model row keeps the CV summary only; the folds (spans, scores, baseline) are in the
training's answer, which its task stores as its result: a ``train`` task's result is the
TrainResponse, an AutoML task with ``create_model`` holds it under ``trained``. MLflow holds
the fold scores too, but not the spans a fold timeline needs.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from alphaforge.context import Context
from alphaforge.errors import NotFound
from alphaforge.schemas.models import ModelCrossValidation
from alphaforge.storage.tables import Task
from alphaforge.tasks.states import SUCCESS
from alphaforge.training import definitions

#: Task kinds whose result names a model it trained (``model_id``).
TRAINING_KINDS = ("train", "automl")


def last_cross_validation(ctx: Context, model_id: uuid.UUID) -> ModelCrossValidation:
    """The newest successful training of the model (404 for an unknown or untrained model,
    or when the task that trained it is no longer stored)."""
    model = definitions.get_model(ctx, model_id)
    if model.lineage is None:
        raise NotFound(f"model {model_id} was never trained: train it (POST /api/v1/models/{model_id}/train)")
    query = (
        select(Task)
        .where(
            Task.kind.in_(TRAINING_KINDS),
            Task.status == SUCCESS,
            Task.parent_id.is_(None),
            Task.result["model_id"].as_string() == str(model_id),
        )
        .order_by(Task.finished_at.desc(), Task.id)
        .limit(1)
    )
    with ctx.db.session() as session:
        task = session.scalars(query).first()
    trained = _training_of(task.result) if task is not None and task.result else None
    if task is None or trained is None:
        raise NotFound(
            f"the task that trained model {model_id} is no longer stored; train it again to see its folds"
        )
    return ModelCrossValidation(
        model_id=model_id, version=trained["version"], task_id=task.id, finished_at=task.finished_at,
        mlflow_run_id=trained.get("mlflow_run_id"), cv_metrics=trained["cv_metrics"],
    )


def _training_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """The TrainResponse inside a task's result (AutoML nests it under ``trained``)."""
    trained = result.get("trained", result)
    return trained if isinstance(trained, dict) and "cv_metrics" in trained else None
