"""The bundled universe SP20: skfolio's 20 large US stocks (their close-only bars are loaded
by :func:`alphaforge.ingestion.bundled.load_sp20_bars`), each a member from its first bar
on. For tests and examples: twenty of today's large caps picked with hindsight, so a
backtest on it has survivorship built in (say so in what you publish)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from alphaforge.context import Context
from alphaforge.ingestion.bundled import SP20_SYMBOLS
from alphaforge.marketdata.bars import Timeframe
from alphaforge.schemas.universes import Membership, UniverseCreate
from alphaforge.storage.tables import Universe
from alphaforge.universes.definitions import create_universe

log = logging.getLogger(__name__)

NAME = "SP20"
DESCRIPTION = (
    "Bundled sample: 20 large US stocks (skfolio's S&P 500 dataset, adjusted closes only, 1990-2022), "
    "members from their first bar. For tests and examples: chosen with hindsight (survivorship built in)."
)


def ensure_sp20(ctx: Context) -> bool:
    """Create SP20 when no universe of that name exists and its bars are stored; True when
    created. A universe named SP20 that a user changed is left as it is."""
    with ctx.db.session() as session:
        if session.scalar(select(Universe.id).where(Universe.name == NAME)) is not None:
            return False
    first = {s.symbol: s.first_bar for s in ctx.bars.list_series() if s.timeframe == Timeframe.DAY.value}
    if not set(SP20_SYMBOLS) <= set(first):
        return False  # the bars are not loaded (bars from a market-data service, or a store down)
    members = [Membership(symbol=symbol, from_=first[symbol]) for symbol in SP20_SYMBOLS]
    create_universe(ctx, UniverseCreate(name=NAME, description=DESCRIPTION, members=members))
    log.info("created the bundled universe %s (%d members)", NAME, len(members))
    return True
