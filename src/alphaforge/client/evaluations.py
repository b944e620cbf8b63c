"""``/api/v1/evaluations``: stored forecasts evaluated as money (Sharpe, drawdown, turnover,
IC, the equity curve), net of costs."""

from __future__ import annotations

from typing import Any

from alphaforge.client.http import Transport, time_limit
from alphaforge.client.tasks import Task, submitted


class Evaluations:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def evaluate(self, *, time_limit_s: float | None = None, **request: Any) -> dict[str, Any]:
        """Fields of the API's EvaluationRequest: a ``model_id`` (its out-of-fold forecasts),
        or ``model_id`` with ``predict``, or an ``out_of_fold_uri``; ``horizon``, ``cost_bps``, ..."""
        return self._transport.json("POST", "/evaluations", json=request, params=time_limit(time_limit_s), long=True)

    def evaluate_async(self, *, time_limit_s: float | None = None, **request: Any) -> Task[dict[str, Any]]:
        response = self._transport.json("POST", "/evaluations/async", json=request, params=time_limit(time_limit_s))
        return submitted(self._transport, response, dict)
