"""``Client``: one object a notebook or script holds to drive a running alphaforge service."""

from __future__ import annotations

import os
from typing import Any

from alphaforge.client.evaluations import Evaluations
from alphaforge.client.features import Features
from alphaforge.client.http import DEFAULT_TIMEOUT_S, DEFAULT_URL, Transport
from alphaforge.client.market_data import MarketData
from alphaforge.client.models import Models
from alphaforge.client.tasks import Tasks
from alphaforge.client.universes import Universes


class Client:
    """The API over HTTP, resource by resource::

        with Client() as af:                      # ALPHAFORGE_URL, ALPHAFORGE_API_KEY
            rsi = af.features.create("RSI 14", "technical.rsi", {"period": 14})
            frame = af.features.generate(rsi["id"], "GSPC", "2010-01-01", "2019-01-01")

    ``url`` defaults to ``ALPHAFORGE_URL`` (else http://127.0.0.1:8000) and ``api_key`` to
    ``ALPHAFORGE_API_KEY``; ``timeout_s`` bounds quick calls (computing calls wait for the
    server, which bounds them by its task time limit)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = (url or os.environ.get("ALPHAFORGE_URL") or DEFAULT_URL).rstrip("/")
        self._transport = Transport(self.url, api_key or os.environ.get("ALPHAFORGE_API_KEY") or None, timeout_s)
        self.features = Features(self._transport)
        self.models = Models(self._transport)
        self.universes = Universes(self._transport)
        self.market_data = MarketData(self._transport)
        self.evaluations = Evaluations(self._transport)
        self.tasks = Tasks(self._transport)

    def health(self) -> dict[str, Any]:
        """``GET /health/ready``: whether the service and its dependencies answer (no key needed)."""
        return self._transport.request("GET", "/health/ready").json()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<alphaforge Client {self.url}>"
