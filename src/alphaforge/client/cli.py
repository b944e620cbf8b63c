"""The CLI's commands over HTTP (``alphaforge features|models|tune|tasks``): the same
``Client`` a notebook uses, with progress bars on stderr for long work, tables for lists and
``--json`` for scripts (stdout then holds one JSON document). The server comes from ``--url``
/ ``--api-key`` or ``ALPHAFORGE_URL`` / ``ALPHAFORGE_API_KEY``.

Exit status: 0 done, 1 a task that failed or was cancelled, 2 a refusal (the API's detail is
printed) or no server."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alphaforge.client.client import Client
from alphaforge.client.errors import AlphaforgeError, TaskFailed
from alphaforge.client.http import without_none
from alphaforge.client.models import dataset_spec
from alphaforge.client.tasks import Task

Command = Callable[[Client, argparse.Namespace], Any]
#: Widest cell a table shows (longer values end with an ellipsis; --json shows them whole).
CELL_MAX = 48


# -- output -----------------------------------------------------------------------------------
def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]) -> str:
    """Rows as aligned text columns under a header."""
    cells = [[header for header, _ in columns]]
    cells += [[_cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def _cell(value: Any) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def _day(stamp: str | None) -> str:
    return "-" if stamp is None else stamp[:10]


# -- features ---------------------------------------------------------------------------------
def _features_list(af: Client, args: argparse.Namespace) -> None:
    rows = af.features.list(skip=args.skip, limit=args.limit)
    _emit(args, rows, table(rows, [
        ("id", lambda r: r["id"]), ("name", lambda r: r["name"]), ("plugin", lambda r: r["plugin_key"]),
        ("parameters", lambda r: r["parameters"]), ("version", lambda r: r["version"]),
        ("created", lambda r: _day(r["created_at"])),
    ]))


def _features_create(af: Client, args: argparse.Namespace) -> None:
    feature = af.features.create(args.name, args.plugin, _parameters(args), type=args.type, description=args.description)
    _emit(args, feature, f"created feature {feature['id']} ({feature['name']}: {feature['plugin_key']} "
                         f"{json.dumps(feature['parameters'])})")


def _features_generate(af: Client, args: argparse.Namespace) -> None:
    if args.output and not args.wait:
        raise argparse.ArgumentTypeError("--output needs --wait: the dataset is written once the task has made it")
    task = af.features.generate_async(args.feature_id, args.symbol, args.start, args.end, timeframe=args.timeframe,
                                      time_limit_s=args.time_limit)
    if _submitted_only(task, args):
        return
    frame = task.wait(progress=not args.quiet)
    dataset = frame.attrs["dataset"]
    if args.output:
        _write(frame, Path(args.output))
    _emit(args, {"dataset": dataset, "cached": frame.attrs["cached"]}, _dataset_text(dataset, frame.attrs["cached"], args.output))


def _dataset_text(dataset: dict[str, Any], cached: bool | None, output: str | None) -> str:
    lines = [
        f"dataset {dataset['id']}: {dataset['symbol']} {dataset['timeframe']} {_day(dataset['start_date'])} .. "
        f"{_day(dataset['end_date'])}, {dataset['row_count']} rows, columns {', '.join(dataset['columns'])}",
        f"version {dataset['version_hash'][:16]}…, {'stored before (cached)' if cached else 'computed now'}",
    ]
    if output:
        lines.append(f"written to {output}")
    return "\n".join(lines)


def _write(frame: Any, path: Path) -> None:
    """A dataset to a file: Parquet for .parquet, CSV otherwise."""
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path)


# -- models -----------------------------------------------------------------------------------
def _models_list(af: Client, args: argparse.Namespace) -> None:
    rows = af.models.list(skip=args.skip, limit=args.limit)
    _emit(args, rows, table(rows, [
        ("id", lambda r: r["id"]), ("name", lambda r: r["name"]), ("plugin", lambda r: r["plugin_key"]),
        ("version", lambda r: r["version"]), ("trained", lambda r: _day(r["trained_at"])),
        ("metrics", lambda r: {k: r["metrics"][k] for k in list(r["metrics"])[:3]}),
    ]))


def _models_create(af: Client, args: argparse.Namespace) -> None:
    model = af.models.create(args.name, args.model_type, _parameters(args), family=args.family)
    _emit(args, model, f"created model {model['id']} ({model['name']}: {model['plugin_key']} "
                       f"{json.dumps(model['parameters'])})")


def _models_train(af: Client, args: argparse.Namespace) -> None:
    task = af.models.train_async(args.model_id, _dataset(args), _cv(args), seed=args.seed, time_limit_s=args.time_limit)
    if _submitted_only(task, args):
        return
    report = task.wait(progress=not args.quiet)
    _emit(args, report, _training_text(report))


def _training_text(report: dict[str, Any]) -> str:
    metrics = report["cv_metrics"]
    folds = table(metrics["folds"], [
        ("fold", lambda f: f["fold"]), ("train", lambda f: f"{_day(f['train_start'])}..{_day(f['train_end'])}"),
        ("test", lambda f: f"{_day(f['test_start'])}..{_day(f['test_end'])}"), ("n_test", lambda f: f["n_test"]),
        ("mse", lambda f: f["mse"]), ("baseline_mse", lambda f: f["baseline_mse"]), ("ic", lambda f: f["ic"]),
        ("direction", lambda f: f["directional_accuracy"]),
    ])
    summary, baseline = metrics["summary"], metrics["baseline"]
    shown = [k for k in ("mean_mse", "mean_ic", "mean_directional_accuracy") if k in summary]
    versus = ", ".join(f"{k} {_cell(summary[k])} (baseline {_cell(baseline.get(k))})" for k in shown)
    return (f"trained model {report['model_id']} (version {report['version']}) on {report['n_train_rows']} rows, "
            f"features {', '.join(report['feature_columns'])}\n{folds}\n{versus}\n"
            f"artifact {report['artifact_uri']}\nmlflow run {report['mlflow_run_id']}")


# -- tuning -----------------------------------------------------------------------------------
def _tune(af: Client, args: argparse.Namespace) -> None:
    space = _json_argument(args.param_space, "--param-space") if args.param_space else None
    request = without_none({"plugin_key": args.plugin, "dataset": _dataset(args), "cv": _cv(args),
                            "n_trials": args.trials, "seed": args.seed, "fixed_params": _parameters(args),
                            "metric": args.metric, "param_space": space})
    task = af.models.tune_async(time_limit_s=args.time_limit, **request)
    if _submitted_only(task, args):
        return
    study = task.wait(progress=not args.quiet)
    _emit(args, study, _study_text(study))


def _study_text(study: dict[str, Any]) -> str:
    trials = table(study["trials"], [
        ("trial", lambda t: t["number"]), ("state", lambda t: t["state"]), ("score", lambda t: t["score"]),
        ("params", lambda t: t["params"]), ("seconds", lambda t: t["duration_s"]),
    ])
    return (f"study {study['study_name']}: {study['plugin_key']}, {study['metric']} ({study['direction']}), "
            f"{study['n_complete']} complete, {study['n_pruned']} pruned, {study['n_failed']} failed "
            f"(stopped: {study['stop_reason']})\n{trials}\n"
            f"best trial {study['best_trial']}: {study['metric']} {_cell(study['best_score'])} with "
            f"{json.dumps(study['best_params'])}")


# -- tasks ------------------------------------------------------------------------------------
def _tasks_list(af: Client, args: argparse.Namespace) -> None:
    rows = af.tasks.list(kind=args.kind, status=args.status, limit=args.limit)
    _emit(args, rows, table(rows, [
        ("task_id", lambda r: r["task_id"]), ("kind", lambda r: r["kind"]), ("status", lambda r: r["status"]),
        ("progress", lambda r: f"{r['progress']:.0%}"), ("submitted", lambda r: r["submitted_at"][:19]),
        ("message", lambda r: (r["error"] or {}).get("message") or r["progress_message"]),
    ]))


def _tasks_watch(af: Client, args: argparse.Namespace) -> None:
    task = af.tasks.handle(args.task_id)
    result = task.wait(progress=not args.quiet)
    _emit(args, task.info, _RESULT_TEXT.get(task.kind, _generic_text)(result))


def _tasks_cancel(af: Client, args: argparse.Namespace) -> None:
    info = af.tasks.cancel(args.task_id)
    _emit(args, info, f"task {info['task_id']} ({info['kind']}): {info['status']}")


def _generic_text(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str)


_RESULT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "train": _training_text,
    "tune": _study_text,
    "generate": lambda r: _dataset_text(r["dataset"], r.get("cached"), None),
}


# -- shared arguments -------------------------------------------------------------------------
def _submitted_only(task: Task[Any], args: argparse.Namespace) -> bool:
    """Without --wait: say what was submitted and how to follow it."""
    if args.wait:
        return False
    _emit(args, {"task_id": task.id, "kind": task.kind, "status": task.status},
          f"submitted {task.kind} task {task.id}; follow it with: alphaforge tasks watch {task.id}")
    return True


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    """--params JSON, then each --param name=value (values read as JSON when they parse: 14, 0.5, true)."""
    values = dict(_json_argument(args.params, "--params")) if args.params else {}
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--param {item!r}: write name=value, e.g. period=14")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


def _json_argument(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{flag} is not JSON: {exc}") from None


def _dataset(args: argparse.Namespace) -> dict[str, Any]:
    symbols = args.symbols.split(",") if args.symbols else None
    return dataset_spec(args.features, args.start, args.end, symbol=args.symbol, universe=args.universe,
                        symbols=symbols, timeframe=args.timeframe, target_horizon=args.horizon)


def _cv(args: argparse.Namespace) -> dict[str, Any]:
    return without_none({"method": args.cv_method, "n_splits": args.splits})


def _run(command: Command) -> Callable[[argparse.Namespace, Any], int]:
    """The command with a Client from --url/--api-key or the environment; errors as exit codes."""

    def run(args: argparse.Namespace, _settings: Any = None) -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll would bury the progress bar
        try:
            with Client(args.url, args.api_key) as af:
                command(af, args)
        except TaskFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (AlphaforgeError, argparse.ArgumentTypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0

    return run


def _connection() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the service (default: ALPHAFORGE_URL, else http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="the key to send (default: ALPHAFORGE_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON (for scripts) instead of text")
    return common


def _long(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait for the task with a progress bar (stderr) and "
                        "print its result; otherwise print the task id")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--time-limit", type=float, help="seconds the task may run (default: the server's)")


def _range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, help="first date (inclusive, ISO 8601; naive = UTC)")
    parser.add_argument("--end", required=True, help="end date (exclusive)")
    parser.add_argument("--timeframe", default="1d", help="1h, 1d or 1w (default 1d)")


def _parameter_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=f"a {what} (repeat)")
    parser.add_argument("--params", metavar="JSON", help=f"{what}s as a JSON object")


def _training_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="FEATURE_ID", help="columns, in this order")
    rows = parser.add_mutually_exclusive_group(required=True)
    rows.add_argument("--symbol", help="one symbol's rows")
    rows.add_argument("--universe", help="a universe's members (name or id)")
    rows.add_argument("--symbols", help="a comma-separated list of symbols")
    _range(parser)
    parser.add_argument("--horizon", type=int, help="bars ahead the target looks (default 1)")
    parser.add_argument("--cv-method", choices=["rolling", "expanding"], help="walk-forward windows (default rolling)")
    parser.add_argument("--splits", type=int, help="CV folds (default 5)")
    parser.add_argument("--seed", type=int, help="seeds every fit (default 0)")


def _listing(commands: Any, common: argparse.ArgumentParser, description: str, command: Command) -> None:
    listing = commands.add_parser("list", parents=[common], help=description)
    listing.add_argument("--skip", type=int, default=0)
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=_run(command))


def add_commands(sub: Any) -> None:
    """Register ``features``, ``models``, ``tune`` and ``tasks`` on the ``alphaforge`` parser."""
    common = _connection()

    features = sub.add_parser("features", help="feature definitions and datasets, over HTTP").add_subparsers(
        dest="features_command", required=True)
    _listing(features, common, "feature definitions (a table)", _features_list)
    create = features.add_parser("create", parents=[common], help="define a feature")
    create.add_argument("--name", required=True)
    create.add_argument("--plugin", required=True, help="a plugin key, e.g. technical.rsi")
    create.add_argument("--type", help="the family (default: the plugin key's first part)")
    create.add_argument("--description")
    _parameter_flags(create, "plugin parameter")
    create.set_defaults(run=_run(_features_create))
    generate = features.add_parser("generate", parents=[common], help="compute (or find) a feature's dataset")
    generate.add_argument("feature_id")
    generate.add_argument("--symbol", required=True)
    _range(generate)
    generate.add_argument("--output", help="with --wait: write the dataset to this file (.parquet, else CSV)")
    _long(generate)
    generate.set_defaults(run=_run(_features_generate))

    models = sub.add_parser("models", help="model definitions and training, over HTTP").add_subparsers(
        dest="models_command", required=True)
    _listing(models, common, "model definitions (a table)", _models_list)
    create = models.add_parser("create", parents=[common], help="define a model")
    create.add_argument("--name", required=True)
    create.add_argument("--type", dest="model_type", required=True, help="e.g. lightgbm, ridge, ml.xgboost")
    create.add_argument("--family", default="machine_learning")
    _parameter_flags(create, "model parameter")
    create.set_defaults(run=_run(_models_create))
    train = models.add_parser("train", parents=[common], help="cross-validate, fit and store a model")
    train.add_argument("model_id")
    _training_data(train)
    _long(train)
    train.set_defaults(run=_run(_models_train))

    tune = sub.add_parser("tune", parents=[common], help="an Optuna study over a model plugin's parameters")
    tune.add_argument("--plugin", required=True, help="a model plugin key, e.g. ml.lightgbm")
    tune.add_argument("--trials", type=int, default=20, help="trials in the study (default 20)")
    tune.add_argument("--metric", help="the score (default mean_mse)")
    tune.add_argument("--param-space", metavar="JSON", help="{param: spec}; default: the plugin's search space")
    _parameter_flags(tune, "fixed parameter")
    _training_data(tune)
    _long(tune)
    tune.set_defaults(run=_run(_tune))

    tasks = sub.add_parser("tasks", help="tasks: list, watch with a progress bar, cancel").add_subparsers(
        dest="tasks_command", required=True)
    listing = tasks.add_parser("list", parents=[common], help="recent tasks, newest first (a table)")
    listing.add_argument("--kind")
    listing.add_argument("--status", choices=["PENDING", "STARTED", "SUCCESS", "FAILURE", "REVOKED"])
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=_run(_tasks_list))
    watch = tasks.add_parser("watch", parents=[common], help="follow a task to its end and print its result")
    watch.add_argument("task_id")
    watch.add_argument("--quiet", action="store_true", help="no progress bar")
    watch.set_defaults(run=_run(_tasks_watch))
    cancel = tasks.add_parser("cancel", parents=[common], help="revoke a pending task, stop a running one")
    cancel.add_argument("task_id")
    cancel.set_defaults(run=_run(_tasks_cancel))
