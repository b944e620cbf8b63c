"""News articles of a symbol: read a time range, ingest (deduplicated, append-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from alphaforge.api.security import ADMIN, READ
from alphaforge.schemas.errors import responses
from alphaforge.api.deps import CtxDep, read_upload, upload_openapi
from alphaforge.ingestion import service as ingestion
from alphaforge.marketdata import service
from alphaforge.schemas.news import NewsIngestResponse, NewsRecord, NewsResponse, NewsUpload
from alphaforge.schemas.request import RequestTime, SymbolPath

router = APIRouter(prefix="/market-data/{symbol}/news", tags=["news"])

_UPLOAD_DOC = upload_openapi(NewsUpload)


@router.get("", response_model=NewsResponse, dependencies=[READ], responses=responses(404))
def get_news(
    symbol: SymbolPath,
    ctx: CtxDep,
    start: RequestTime | None = None,
    end: RequestTime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> NewsResponse:
    """Articles with start <= published_at < end, ordered by published_at then headline;
    ``n_articles`` counts all of them, ``articles`` holds the first ``limit``. Naive times
    are UTC."""
    page = service.news_page(ctx, symbol, start, end, limit)
    return NewsResponse(
        symbol=page.symbol,
        start=page.start,
        end=page.end,
        n_articles=page.n_articles,
        articles=[NewsRecord(**r) for r in page.articles],
    )


@router.post(
    "",
    response_model=NewsIngestResponse,
    openapi_extra=_UPLOAD_DOC,
    dependencies=[ADMIN],
    responses=responses(415),
)
async def ingest_news(symbol: SymbolPath, request: Request, ctx: CtxDep) -> NewsIngestResponse:
    """Ingest articles (published_at with a time zone, headline, optional body, source,
    url) from a CSV file (multipart field ``file``) or JSON ``{"articles": [...]}``.

    Every article passes the data-quality gate or nothing is stored (422 naming the bad
    rows). An article whose (published_at, headline) is stored already is a duplicate and
    is skipped, whatever its body: the first stored wins, nothing is ever rewritten.
    """
    shape = '{"articles": [{published_at, headline, body?, source?, url?}, ...]}'
    async with read_upload(request, NewsUpload, shape) as records:
        report = await run_in_threadpool(ingestion.ingest_news, ctx, symbol, records)
    return NewsIngestResponse(**report.__dict__)
