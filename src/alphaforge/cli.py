"""``alphaforge`` command line: serve, migrate, keys, ingest, symbols, ingest-macro,
macro-series, ingest-fundamentals, ingest-news, news, worker (on this machine's data); and
features, models, tune, tasks (a running service over HTTP: ``alphaforge.client.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from collections.abc import Callable
from typing import Any

from alphaforge import logs
from alphaforge.errors import AlphaforgeError
from alphaforge.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from alphaforge.api.app import create_app

    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port)
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.storage.migrate import upgrade

    upgrade(settings.resolved_database_url)
    print(f"database at the newest schema: {_redacted(settings.resolved_database_url)}")
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.marketdata.bars import parse_timeframe
    from alphaforge.ingestion.records import read_csv_upload
    from alphaforge.ingestion.service import ingest_bars

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        records = read_csv_upload(Path(args.csv))
        result = ingest_bars(ctx, args.symbol, parse_timeframe(args.timeframe), records)
    finally:
        ctx.close()
    print(
        f"{result.symbol} {result.timeframe}: {result.received} received, {result.inserted} new, "
        f"{result.replaced} replaced; {result.n_bars} bars from {result.first_bar:%Y-%m-%d} "
        f"to {result.last_bar:%Y-%m-%d}"
    )
    return 0


def _symbols(_args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.marketdata.service import list_symbols

    ctx = start_context(settings)
    try:
        for info in list_symbols(ctx):
            for tf in info.timeframes:
                count = "derived" if tf.n_bars is None else f"{tf.n_bars} bars"
                print(f"{info.symbol:<12} {tf.timeframe:<3} {tf.first_bar:%Y-%m-%d} .. {tf.last_bar:%Y-%m-%d}  {count}")
    finally:
        ctx.close()
    return 0


def _ingest_macro(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.records import read_csv_upload
    from alphaforge.ingestion.service import ingest_macro

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        records = read_csv_upload(Path(args.csv))
        report = ingest_macro(ctx, args.series, records)
    finally:
        ctx.close()
    print(
        f"{report.series}: {report.received} received, {report.inserted} new, {report.unchanged} unchanged; "
        f"{report.n_records} records, fingerprint {report.fingerprint[:12]}"
    )
    return 0


def _macro_series(_args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.bundled import load_bundled_macro

    ctx = start_context(settings)
    try:
        if settings.load_sample_data:
            load_bundled_macro(ctx.macro)  # idempotent
        for info in ctx.macro.list_series():
            print(
                f"{info.series:<12} {info.first_observation:%Y-%m-%d} .. {info.last_observation:%Y-%m-%d}  "
                f"{info.n_records} records, last available {info.last_available_at:%Y-%m-%d}"
            )
    finally:
        ctx.close()
    return 0


def _ingest_fundamentals(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.records import read_csv_upload
    from alphaforge.ingestion.service import ingest_fundamentals

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        records = read_csv_upload(Path(args.csv))
        report = ingest_fundamentals(ctx, args.symbol, records)
    finally:
        ctx.close()
    fingerprints = ", ".join(f"{field} {fp[:12]}" for field, fp in sorted(report.fingerprints.items()))
    print(
        f"{report.symbol}: {report.received} received, {report.inserted} new, {report.unchanged} unchanged; "
        f"{report.n_records} records, fingerprints {fingerprints}"
    )
    return 0


def _read_articles(path: Path) -> Any:
    """A news file as raw records: CSV, or JSON (``{"articles": [...]}`` or a plain list)."""
    import pandas as pd

    from alphaforge.errors import InvalidInput
    from alphaforge.ingestion.records import read_csv_upload

    if path.suffix.lower() != ".json":
        return read_csv_upload(path)
    try:
        payload = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the JSON file {path}: {exc}") from None
    articles = payload.get("articles") if isinstance(payload, dict) else payload
    if not isinstance(articles, list) or not all(isinstance(a, dict) for a in articles):
        raise InvalidInput(
            'a JSON news file must be {"articles": [{published_at, headline, ...}, ...]} or a list of such objects'
        )
    return pd.DataFrame(articles)


def _ingest_news(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.ingestion.service import ingest_news

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        report = ingest_news(ctx, args.symbol, _read_articles(Path(args.file)))
    finally:
        ctx.close()
    print(
        f"{report.symbol}: {report.received} received, {report.inserted} new, {report.duplicates} duplicate(s); "
        f"{report.n_articles} articles, fingerprint {report.fingerprint[:12]}"
    )
    return 0


def _news(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.bootstrap import start_context
    from alphaforge.errors import InvalidInput

    symbol, start, end = args.symbol, args.start, args.end
    if start is not None and end is not None and end <= start:
        raise InvalidInput("--end must be after --start")
    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        total, articles = ctx.news.list_articles(symbol, start, end, args.limit)
    finally:
        ctx.close()
    if not articles:
        within = "" if start is None and end is None else f" from {start or '-'} to {end or '-'}"
        print(f"no news for {symbol}{within}", file=sys.stderr)
        return 1
    for article in articles:
        print(f"{article['published_at']:%Y-%m-%d %H:%M:%S}Z  {article['source'] or '-'}  {article['headline']}")
    if total > len(articles):
        print(f"showing {len(articles)} of {total} articles (see --limit)", file=sys.stderr)
    return 0


def _iso_time(text: str) -> datetime:
    """An ISO 8601 time for --start/--end, in UTC; naive times are UTC, as in the API."""
    from alphaforge.marketdata.times import to_utc

    try:
        return to_utc(datetime.fromisoformat(text))
    except (ValueError, AlphaforgeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date/time (e.g. 2018-01-02T14:30:00Z)") from None


def _name(normalize: Callable[[str], str]) -> Callable[[str], str]:
    """A symbol or series argument, normalised as the API's path parameters are."""

    def parse(text: str) -> str:
        try:
            return normalize(text)
        except AlphaforgeError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


def _symbol(text: str) -> str:
    from alphaforge.marketdata.bars import normalize_symbol

    return _name(normalize_symbol)(text)


def _series(text: str) -> str:
    from alphaforge.marketdata.macro import normalize_series

    return _name(normalize_series)(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.tasks.celery_app import run_worker

    run_worker(settings, args.concurrency)
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    """Manage API keys directly in the database (no server needed: whoever can run this
    already holds the database)."""
    from alphaforge.auth.keys import KeyStore
    from alphaforge.auth.roles import Role
    from alphaforge.storage.db import Database
    from alphaforge.storage.migrate import upgrade

    if settings.migrate_on_start:
        upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    store = KeyStore(db)
    try:
        if args.keys_command == "create":
            row, key = store.create(args.name, Role(args.role))
            print(f"created {row.role} key {row.id} ({row.name}); shown once, keep it safe:\n{key}")
        elif args.keys_command == "list":
            for row in store.list(include_revoked=args.all):
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                print(f"{row.id}  {row.prefix}…  {row.role:<8}  {state:<24}  {row.name}")
        else:
            row = store.revoke(_uuid(args.key_id))
            print(f"revoked key {row.id} ({row.name})")
    finally:
        db.dispose()
    return 0


def _uuid(text: str) -> Any:
    import uuid

    from alphaforge.errors import InvalidInput

    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a key id (a UUID, see `alphaforge keys list`)") from None


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphaforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, load the sample data, serve the API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)

    ingest = sub.add_parser("ingest", help="ingest OHLCV bars from a CSV file")
    ingest.add_argument("symbol", type=_symbol)
    ingest.add_argument("csv", help="CSV with timestamp, open, high, low, close, volume")
    ingest.add_argument("--timeframe", default="1d", choices=["1h", "1d"])
    ingest.set_defaults(run=_ingest)

    sub.add_parser("symbols", help="list the symbols and timeframes held").set_defaults(run=_symbols)

    ingest_macro = sub.add_parser("ingest-macro", help="ingest point-in-time macro records from a CSV file")
    ingest_macro.add_argument("series", type=_series)
    ingest_macro.add_argument("csv", help="CSV with observation_date, available_at, value")
    ingest_macro.set_defaults(run=_ingest_macro)

    sub.add_parser("macro-series", help="list the macro series held").set_defaults(run=_macro_series)

    ingest_fund = sub.add_parser("ingest-fundamentals", help="ingest point-in-time fundamentals from a CSV file")
    ingest_fund.add_argument("symbol", type=_symbol)
    ingest_fund.add_argument("csv", help="CSV with period_end, available_at, field, value")
    ingest_fund.set_defaults(run=_ingest_fundamentals)

    ingest_news = sub.add_parser("ingest-news", help="ingest news articles from a CSV or JSON file")
    ingest_news.add_argument("symbol", type=_symbol)
    ingest_news.add_argument(
        "file", help='CSV, or .json ({"articles": [...]} or a list), with published_at (with a zone), headline, '
        "and optional body, source, url"
    )
    ingest_news.set_defaults(run=_ingest_news)

    news = sub.add_parser("news", help="list a symbol's news articles (UTC time, source, headline)")
    news.add_argument("symbol", type=_symbol)
    news.add_argument("--start", type=_iso_time, help="first published_at (inclusive, ISO 8601; naive = UTC)")
    news.add_argument("--end", type=_iso_time, help="published_at bound (exclusive, ISO 8601; naive = UTC)")
    news.add_argument("--limit", type=_positive, default=1000, help="most articles listed (default 1000)")
    news.set_defaults(run=_news)

    keys = sub.add_parser("keys", help="manage API keys (create prints the key once)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key with a role")
    create.add_argument("--name", required=True, help="who or what uses it (e.g. alice-notebook)")
    create.add_argument("--role", required=True, choices=["read", "research", "admin"])
    listing = keys_sub.add_parser("list", help="list keys (not the keys themselves: only hashes are stored)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key: requests with it are refused (401)")
    revoke.add_argument("key_id")
    keys.set_defaults(run=_keys)

    worker = sub.add_parser("worker", help="run tasks from the Celery broker (ALPHAFORGE_CELERY_BROKER_URL)")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.set_defaults(run=_worker)

    from alphaforge.client.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, Settings())
    except AlphaforgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
