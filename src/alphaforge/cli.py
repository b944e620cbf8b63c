"""``alphaforge`` command line: serve, migrate, ingest, symbols, ingest-macro, macro-series."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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
    from alphaforge.api.app import start_context
    from alphaforge.marketdata.bars import parse_timeframe
    from alphaforge.services.market_data import ingest_bars, read_csv_upload

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        records = read_csv_upload(Path(args.csv).read_bytes())
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
    from alphaforge.api.app import start_context
    from alphaforge.services.market_data import list_symbols

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
    from alphaforge.api.app import start_context
    from alphaforge.marketdata.macro import macro_store
    from alphaforge.services.market_data import read_csv_upload

    ctx = start_context(settings.model_copy(update={"load_sample_data": False}))
    try:
        records = read_csv_upload(Path(args.csv).read_bytes())
        report = macro_store(ctx).ingest(args.series, records)
    finally:
        ctx.close()
    print(
        f"{report.series}: {report.received} received, {report.inserted} new, {report.unchanged} unchanged; "
        f"{report.n_records} records, fingerprint {report.fingerprint[:12]}"
    )
    return 0


def _macro_series(_args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.api.app import start_context
    from alphaforge.marketdata.macro import load_bundled_macro, macro_store

    ctx = start_context(settings)
    try:
        if settings.load_sample_data:
            load_bundled_macro(ctx)  # idempotent
        for info in macro_store(ctx).list_series():
            print(
                f"{info.series:<12} {info.first_observation:%Y-%m-%d} .. {info.last_observation:%Y-%m-%d}  "
                f"{info.n_records} records, last available {info.last_available_at:%Y-%m-%d}"
            )
    finally:
        ctx.close()
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from alphaforge.tasks.celery_app import run_worker

    run_worker(settings, args.concurrency)
    return 0


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
    ingest.add_argument("symbol")
    ingest.add_argument("csv", help="CSV with timestamp, open, high, low, close, volume")
    ingest.add_argument("--timeframe", default="1d", choices=["1h", "1d"])
    ingest.set_defaults(run=_ingest)

    sub.add_parser("symbols", help="list the symbols and timeframes held").set_defaults(run=_symbols)

    ingest_macro = sub.add_parser("ingest-macro", help="ingest point-in-time macro records from a CSV file")
    ingest_macro.add_argument("series")
    ingest_macro.add_argument("csv", help="CSV with observation_date, available_at, value")
    ingest_macro.set_defaults(run=_ingest_macro)

    sub.add_parser("macro-series", help="list the macro series held").set_defaults(run=_macro_series)

    worker = sub.add_parser("worker", help="run tasks from the Celery broker (ALPHAFORGE_CELERY_BROKER_URL)")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.set_defaults(run=_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, Settings())
    except AlphaforgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
