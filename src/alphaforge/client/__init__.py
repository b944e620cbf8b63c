"""The Python client of alphaforge's API: ``Client()`` for notebooks and scripts, task
handles with progress bars, DataFrames for datasets and forecasts, typed errors."""

from alphaforge.client.client import Client
from alphaforge.client.errors import (
    AlphaforgeError,
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TaskCancelled,
    TaskFailed,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from alphaforge.client.models import dataset_spec
from alphaforge.client.tasks import Task

__all__ = [
    "AlphaforgeError", "ApiError", "BadRequest", "Client", "Conflict", "ConnectionFailed", "Forbidden", "NotFound",
    "PayloadTooLarge", "RateLimited", "ServerError", "ServiceUnavailable", "Task", "TaskCancelled", "TaskFailed",
    "Unauthorized", "ValidationFailed", "WaitTimeout", "dataset_spec",
]
