"""What each kind of task runs: the same service functions as the synchronous endpoints.

A kind's ``run`` takes the JSON request stored on the task row and returns a JSON result.
Kinds whose work is split into child tasks (a tune's trial shards, a batch of generations)
also have ``finalize``, run once by whichever child finishes last.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alphaforge.context import Context
from alphaforge.errors import InvalidInput
from alphaforge.tasks.progress import Cancelled, Progress

Json = dict[str, Any]


@dataclass(frozen=True)
class TaskKind:
    name: str
    run: Callable[[Context, Json, Progress], Json | None]
    #: Parents only: the result from the children's outcomes ({status, request, result, error}).
    finalize: Callable[[Context, Json, list[Json]], Json] | None = None
    #: Children whose progress is the whole job's (trial shards of one study).
    progress_to_parent: bool = False


def _train(ctx: Context, request: Json, progress: Progress) -> Json:
    from alphaforge.schemas.models import TrainRequest, TrainResponse
    from alphaforge.training.trainer import train_model

    result = train_model(ctx, uuid.UUID(request["model_id"]), TrainRequest.model_validate(request["body"]), progress)
    return TrainResponse.model_validate(result, from_attributes=True).model_dump(mode="json")


def _generate(ctx: Context, request: Json, progress: Progress) -> Json:
    """``force``: regenerate (recompute even on a hit)."""
    from alphaforge.schemas.features import FeatureDatasetRead, FeatureGenerateRequest
    from alphaforge.features.generation import generate_dataset

    progress(0.0, f"generating {request['body']['symbol']}")
    body = FeatureGenerateRequest.model_validate(request["body"])
    result = generate_dataset(ctx, uuid.UUID(request["feature_id"]), body, force=bool(request.get("force")))
    return {
        "dataset": FeatureDatasetRead.model_validate(result.dataset).model_dump(mode="json"),
        "preview": result.preview,
        "cached": result.cached,
    }


def _predict(ctx: Context, request: Json, progress: Progress) -> Json:
    from alphaforge.schemas.models import PredictRequest, PredictResponse
    from alphaforge.training.prediction import predict

    progress(0.0, "recomputing the features and predicting")
    result = predict(ctx, uuid.UUID(request["model_id"]), PredictRequest.model_validate(request["body"]))
    return PredictResponse.model_validate(result, from_attributes=True).model_dump(mode="json")


def _evaluate(ctx: Context, request: Json, progress: Progress) -> Json:
    from alphaforge.schemas.evaluations import EvaluationRequest, EvaluationResponse
    from alphaforge.training.evaluations import evaluate

    progress(0.0, "evaluating the forecasts as a strategy")
    result = evaluate(ctx, EvaluationRequest.model_validate(request["body"]))
    return EvaluationResponse.model_validate(result).model_dump(mode="json")


def _batch_result(ctx: Context, request: Json, outcomes: list[Json]) -> Json:
    """Items in the request's order (feature ids, then symbols), whatever order the rows have."""
    features = {f: i for i, f in enumerate(dict.fromkeys(request["feature_ids"]))}
    symbols = {s: i for i, s in enumerate(dict.fromkeys(request["symbols"]))}
    outcomes = sorted(outcomes, key=lambda o: (features[o["request"]["feature_id"]], symbols[o["request"]["body"]["symbol"]]))
    failed = [o for o in outcomes if o["status"] != "SUCCESS"]
    items = [
        {
            "feature_id": o["request"]["feature_id"],
            "symbol": o["request"]["body"]["symbol"],
            "task_id": o["task_id"],
            "status": o["status"],
            "dataset": (o["result"] or {}).get("dataset"),
            "cached": (o["result"] or {}).get("cached"),
            "error": o["error"],
        }
        for o in outcomes
    ]
    if failed and len(failed) == len(outcomes):
        first = failed[0]["error"] or {"message": failed[0]["status"]}
        raise InvalidInput(f"all {len(outcomes)} generations failed; the first: {first['message']}")
    return {"n_succeeded": len(outcomes) - len(failed), "n_failed": len(failed), "items": items}


def _generate_pieces(ctx: Context, request: Json, progress: Progress) -> Json:
    """One batch of panels' pieces: each part's members' datasets of its feature (a hit, or
    computed and stored), with the part's preview."""
    from alphaforge.features.generation import PREVIEW_ROWS, generate_pieces
    from alphaforge.features.panel_store import Member, batch_preview
    from alphaforge.hashing import utc_iso
    from alphaforge.schemas.features import FeatureGenerateRequest

    parts = []
    for part in request["parts"]:
        bodies = [FeatureGenerateRequest.model_validate(b) for b in part["bodies"]]
        progress(len(parts) / len(request["parts"]), f"generating {len(bodies)} symbols")
        made = generate_pieces(ctx, uuid.UUID(part["feature_id"]), bodies)
        firsts = [None if m is None or m.values is None else m.values.first() for m in made]
        stored = [(Member(body.symbol, m.dataset.storage_uri, m.dataset.row_count, first),
                   None if m.values is None else m.values.head(PREVIEW_ROWS))
                  for body, m, first in zip(bodies, made, firsts, strict=True) if m is not None]
        parts.append({"feature_id": part["feature_id"], "preview": batch_preview(ctx, stored), "pieces": [
            {
                "symbol": body.symbol, "from": utc_iso(body.start_date),
                "dataset": None if m is None else
                {"id": str(m.dataset.id), "version_hash": m.dataset.version_hash, "storage_uri": m.dataset.storage_uri,
                 "rows": m.dataset.row_count, "columns": list(m.dataset.columns), "first": first},
                "cached": m is not None and m.values is None,
            }
            for body, m, first in zip(bodies, made, firsts, strict=True)
        ]})
    return {"parts": parts}


def _stack_panel(ctx: Context, request: Json, progress: Progress) -> Json:
    """A view's pieces written as one Parquet file, for its download."""
    from alphaforge.features.panels import stack_panel

    progress(0.0, "stacking the panel's pieces")
    stack_panel(ctx, uuid.UUID(request["feature_id"]), uuid.UUID(request["panel_id"]))
    return {"panel_id": request["panel_id"]}


def _panel_result(ctx: Context, request: Json, outcomes: list[Json]) -> Json:
    """Assemble the panel from its pieces' datasets; one failed batch fails the panel."""
    _refuse_failed(outcomes, "the panel's")
    return _assembled(ctx, request, outcomes)


def _panels_result(ctx: Context, request: Json, outcomes: list[Json]) -> Json:
    """Assemble each requested feature's panel, in the request's order; one failed batch
    fails them all (nothing half-answered: the stored pieces stay hits for a retry)."""
    _refuse_failed(outcomes, "the panels'")
    return {"panels": [_assembled(ctx, one, outcomes) for one in request["panels"]]}


def _refuse_failed(outcomes: list[Json], whose: str) -> None:
    failed = [o for o in outcomes if o["status"] != "SUCCESS"]
    if failed:
        first = failed[0]
        message = (first["error"] or {}).get("message") or first["status"]
        raise InvalidInput(f"{len(failed)} of {whose} {len(outcomes)} generation tasks failed; the first: {message}")


def _assembled(ctx: Context, request: Json, outcomes: list[Json]) -> Json:
    """One panel (``panels.task_request``) from the batches' parts of its pieces' feature."""
    from alphaforge.features.panel_store import merge_previews
    from alphaforge.features.panels import MadePiece, assemble_panel, pieces_feature_id, remember_preview
    from alphaforge.schemas.features import FeaturePanelRead

    feature_id = pieces_feature_id(request)
    parts = [part for o in outcomes for part in o["result"]["parts"] if part["feature_id"] == feature_id]
    pieces = [p for part in parts for p in part["pieces"]]
    made = {
        (p["symbol"], p["from"]): MadePiece(p["dataset"]["version_hash"], p["dataset"]["storage_uri"],
                                            p["dataset"]["rows"], p["dataset"]["columns"], computed=not p["cached"],
                                            first=p["dataset"]["first"])
        for p in pieces if p["dataset"] is not None
    }
    result = assemble_panel(ctx, request, made)
    previews = [part.get("preview") for part in parts]
    if "input" not in request and None not in previews:  # a view of these pieces: its first rows are its batches'
        remember_preview(result.panel.storage_uri, merge_previews(previews))
    return {
        "panel": FeaturePanelRead.model_validate(result.panel).model_dump(mode="json"),
        "preview": result.preview,
        "cached": result.cached,
        "pieces": [
            {"symbol": p["symbol"], "dataset_id": p["dataset"]["id"], "cached": p["cached"]}
            for p in sorted(pieces, key=lambda p: (p["symbol"], p["from"])) if p["dataset"] is not None
        ],
    }


def _no_parent_work(ctx: Context, request: Json, progress: Progress) -> Json | None:
    raise RuntimeError("a parent task is finished by its children, never run itself")


def _tune_trials(ctx: Context, request: Json, progress: Progress) -> Json:
    """One shard: trials on the shared study until it holds n_trials (or stops)."""
    from alphaforge.schemas.tuning import TuneRequest
    from alphaforge.tuning.tuner import abort_study, run_trials

    try:
        run_trials(ctx, TuneRequest.model_validate(request["body"]), request["study_name"], progress)
    except Cancelled:
        abort_study(ctx, request["study_name"], "KILLED")  # every other shard stops at its next trial
        raise
    return {"study_name": request["study_name"]}


def _tune_result(ctx: Context, request: Json, outcomes: list[Json]) -> Json:
    from alphaforge.schemas.tuning import TuneRequest
    from alphaforge.tuning.tuner import abort_study, tune_result

    if all(o["status"] != "SUCCESS" for o in outcomes):
        abort_study(ctx, request["study_name"], "FAILED")
        error = next((o["error"] for o in outcomes if o["error"]), None) or {"message": "every trial shard failed"}
        raise InvalidInput(f"the tune failed: {error['message']}")
    return tune_result(ctx, TuneRequest.model_validate(request["body"]), request["study_name"]).model_dump(mode="json")


def _automl(ctx: Context, request: Json, progress: Progress) -> Json:
    from alphaforge.schemas.tuning import AutoMLRequest
    from alphaforge.tuning.automl import automl

    return automl(ctx, AutoMLRequest.model_validate(request["body"]), progress).model_dump(mode="json")


TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (
        TaskKind("train", _train),
        TaskKind("generate", _generate),
        TaskKind("predict", _predict),
        TaskKind("evaluate", _evaluate),
        TaskKind("generate_batch", _no_parent_work, finalize=_batch_result),
        TaskKind("generate_panel", _no_parent_work, finalize=_panel_result),
        TaskKind("generate_panels", _no_parent_work, finalize=_panels_result),
        TaskKind("generate_pieces", _generate_pieces),
        TaskKind("stack_panel", _stack_panel),
        TaskKind("tune", _no_parent_work, finalize=_tune_result),
        TaskKind("tune_trials", _tune_trials, progress_to_parent=True),
        TaskKind("automl", _automl),
    )
}
