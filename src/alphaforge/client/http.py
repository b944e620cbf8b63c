"""The one place the client speaks HTTP: base URL, key, timeouts, and turning error
responses into typed exceptions, so the resources only say which route they call."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import httpx
import pandas as pd

from alphaforge.client.errors import ConnectionFailed, error_for

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1"
#: Seconds to wait for an answer to a quick call (CRUD, task status). Calls that compute
#: (generate, train, tune, ...) wait as long as the server's task time limit allows.
DEFAULT_TIMEOUT_S = 60.0

TimeLike = str | date | datetime | pd.Timestamp


def iso(value: TimeLike | None) -> str | None:
    """A time for a request: strings as given, dates and datetimes in ISO 8601 (naive = UTC)."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out what the caller did not set, so the server's defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


def time_limit(seconds: float | None) -> dict[str, Any]:
    """The ``time_limit_s`` query parameter of every computing route (unset: the server's)."""
    return without_none({"time_limit_s": seconds})


class Transport:
    """An ``httpx.Client`` bound to one server and key."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        #: Calls that compute: no read limit (the server bounds the work with its task time limit).
        self._long = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0), read=None)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=self._timeout)

    def request(self, method: str, path: str, *, long: bool = False, **kwargs: Any) -> httpx.Response:
        """Send; return a 2xx response or raise the typed error (``ConnectionFailed`` when
        no answer came)."""
        try:
            response = self._http.request(method, path, timeout=self._long if long else self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"no answer from alphaforge at {self.url} in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach alphaforge at {self.url}: {exc} (is it running? see ALPHAFORGE_URL)") from exc
        if response.is_error:
            raise error_for(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, API + path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def parquet(self, path: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """A stored Parquet object the API serves (``format=parquet``) as a DataFrame, its
        index as stored."""
        import pyarrow.parquet as pq

        response = self.request("GET", API + path, params={**(params or {}), "format": "parquet"}, long=True)
        return pq.read_table(io.BytesIO(response.content)).to_pandas()

    def upload_csv(self, path: str, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """A DataFrame sent as a CSV file (multipart field ``file``): the upload form, whose
        size limit is larger than JSON's. A DatetimeIndex becomes the ``timestamp`` column."""
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis(frame.index.name or "timestamp").reset_index()
        body = frame.to_csv(index=False).encode()
        files = {"file": ("upload.csv", body, "text/csv")}
        return self.json("POST", path, files=files, params=params, long=True)

    def close(self) -> None:
        self._http.close()
