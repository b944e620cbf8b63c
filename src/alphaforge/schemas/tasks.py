"""Shapes of the task endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from alphaforge.marketdata.bars import Timeframe
from alphaforge.schemas.request import RequestTime, Symbol, TimeRange

TaskStatus = Literal["PENDING", "STARTED", "SUCCESS", "FAILURE", "REVOKED"]
#: Every registered task kind (``alphaforge.tasks.kinds.TASK_KINDS``; a test keeps the two equal).
TaskKindName = Literal[
    "train", "generate", "predict", "evaluate", "generate_batch", "generate_panel", "generate_panels", "generate_pieces", "stack_panel",
    "tune", "tune_trials", "automl",
]


class TaskError(BaseModel):
    type: str
    message: str


class TaskSubmitted(BaseModel):
    task_id: uuid.UUID
    kind: str
    status: TaskStatus


class TaskRead(BaseModel):
    task_id: uuid.UUID
    kind: str
    status: TaskStatus
    progress: float = Field(description="0..1")
    progress_message: str | None
    result: dict[str, Any] | None
    error: TaskError | None
    attempts: int
    parent_id: uuid.UUID | None
    children_total: int
    children_done: int
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_by: uuid.UUID | None = Field(None, description="The API key that submitted it")


class BatchGenerateRequest(TimeRange):
    feature_ids: list[uuid.UUID] = Field(min_length=1, max_length=200)
    symbols: list[Symbol] = Field(min_length=1, max_length=500)
    timeframe: Timeframe = Timeframe.DAY
    start_date: RequestTime = Field(description="Inclusive; naive values are read as UTC")
    end_date: RequestTime = Field(description="Exclusive; naive values are read as UTC")
