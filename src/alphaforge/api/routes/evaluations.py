from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.deps import CtxDep
from alphaforge.api.routes.tasks import submitted
from alphaforge.api.security import RESEARCH
from alphaforge.api.work import TimeLimit, run_and_wait
from alphaforge.schemas.errors import responses
from alphaforge.schemas.evaluations import EvaluationRequest, EvaluationResponse
from alphaforge.schemas.tasks import TaskSubmitted
from alphaforge.tasks import service as tasks
from alphaforge.training import evaluations

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.post("", response_model=EvaluationResponse, dependencies=[RESEARCH], responses=responses(404, 429, 502))
async def evaluate(
    body: EvaluationRequest, ctx: CtxDep, request: Request, time_limit_s: TimeLimit = None,
) -> EvaluationResponse:
    """Stored forecasts evaluated as money (in a task worker): one symbol as a sign strategy,
    a panel as a quantile long-short portfolio rebalanced every ``horizon`` bars with
    non-overlapping holding periods, net of ``cost_bps`` per unit of turnover. Returns the
    annualised return, volatility, Sharpe, Sortino, max drawdown, hit rate, turnover, IC and
    quantile mean returns, and the equity curve per rebalance date."""
    await run_in_threadpool(evaluations.check_evaluation_request, ctx, body)
    result = await run_and_wait(request, ctx, "evaluate", {"body": body.model_dump(mode="json")}, time_limit_s=time_limit_s)
    return EvaluationResponse.model_validate(result)


@router.post(
    "/async", response_model=TaskSubmitted, status_code=202, dependencies=[RESEARCH], responses=responses(404, 429, 502),
)
def evaluate_async(body: EvaluationRequest, ctx: CtxDep, time_limit_s: TimeLimit = None) -> TaskSubmitted:
    """The same evaluation as a task: refused now (404/422) as the synchronous call would be."""
    evaluations.check_evaluation_request(ctx, body)
    return submitted(tasks.submit(ctx, "evaluate", {"body": body.model_dump(mode="json")}, time_limit_s=time_limit_s))
