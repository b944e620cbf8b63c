"""Bad-input cases derived from the app's own OpenAPI document, so a new endpoint or field
cannot be forgotten: every operation that takes a JSON body or a string/date-time
parameter needs a valid request in ``VALID`` (a test fails otherwise), and the cases are
that request with one part made bad.

Paths are tuples of keys and list indexes; ``"*"`` stands for any key of a free dict and
``"[]"`` for any list item when comparing a request against its schema.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alphaforge.api.app import create_app
from alphaforge.settings import Settings

F, M, U = "{feature_id}", "{model_id}", "{universe_id}"  # filled with real ids at run time

#: Values whose Unicode case mapping is ASCII, plus fullwidth letters: never another symbol.
FOLDING = ["ı", "ß", "ﬀ", "ＧＳＰＣ", "\u212a"]  # dotless i, sharp s, ligature ff, fullwidth, Kelvin sign
OUT_OF_RANGE = [
    "0001-01-01",
    "9999-12-31T23:59:59",
    "1677-09-21T00:12:43.145224Z",  # one microsecond before the first int64 nanosecond
    "2262-04-11T23:47:16.854776",  # one microsecond after the last (naive: UTC)
    "2262-04-11T23:00:00-05:00",  # in range as written, 04:00 the next day in UTC
    "1677-09-21T00:30:00+01:00",  # 1677-09-20T23:30 in UTC
]


@dataclass(frozen=True)
class Request:
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    upload: bool = False  # the body is a data upload: checked by its quality gate instead


_DATASET = {
    "feature_ids": [F], "symbol": "GSPC", "timeframe": "1d", "start_date": "2015-01-01",
    "end_date": "2016-01-01T00:00:00Z", "target_horizon": 1,
}
_GENERATE = {"symbol": "GSPC", "timeframe": "1d", "start_date": "2015-01-01", "end_date": "2016-01-01T00:00:00+00:00"}
_CV = {"method": "rolling", "n_splits": 2, "test_size": 0.2, "min_train_size": 0.3}
_TUNE = {
    "plugin_key": "ml.ridge", "dataset": _DATASET, "param_space": {"alpha": {"type": "float", "low": 0.1, "high": 10.0}},
    "fixed_params": {"fit_intercept": True}, "n_trials": 1, "cv": _CV, "metric": "mean_mse", "seed": 1,
}
_AUTOML = {
    "dataset": _DATASET, "candidates": {"ml.ridge": {"alpha": 1.0}}, "cv": _CV, "metric": "mean_mse",
    "model_name": "automl ridge", "create_model": False,
}
_BAR = {"timestamp": "2020-01-02T00:00:00Z", "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5, "volume": 1000}

#: One valid request per operation (method, OpenAPI path) that takes text or times.
VALID: dict[tuple[str, str], Request] = {
    ("POST", "/api/v1/features"): Request(body={
        "name": "rsi", "type": "technical", "plugin_key": "technical.rsi",
        "parameters": {"period": 14, "column": "close"}, "description": "a note",
    }),
    ("PATCH", "/api/v1/features/{feature_id}"): Request({"feature_id": F}, body={
        "name": "rsi 2", "type": "technical", "plugin_key": "technical.rsi", "parameters": {"column": "close"},
        "description": "a note", "storage_uri": "s3://bucket/key", "version": 1,
    }),
    ("GET", "/api/v1/features/{feature_id}/versions"): Request({"feature_id": F}, {"symbol": "GSPC"}),
    ("POST", "/api/v1/features/{feature_id}/generate"): Request({"feature_id": F}, body=_GENERATE),
    ("POST", "/api/v1/features/{feature_id}/generate/async"): Request({"feature_id": F}, body=_GENERATE),
    ("POST", "/api/v1/features/{feature_id}/regenerate"): Request({"feature_id": F}, body=_GENERATE),
    ("POST", "/api/v1/features/generate"): Request(body={
        "feature_ids": [F], "symbols": ["GSPC", "IXIC"], "timeframe": "1d",
        "start_date": "2015-01-01", "end_date": "2016-01-01",
    }),
    ("POST", "/api/v1/models"): Request(body={
        "name": "ridge", "model_type": "ridge", "family": "machine_learning", "parameters": {"alpha": 1.0, "fit_intercept": True},
    }),
    ("PATCH", "/api/v1/models/{model_id}"): Request({"model_id": M}, body={
        "name": "ridge 2", "model_type": "ridge", "family": "machine_learning", "parameters": {"alpha": 2.0},
        "mlflow_run_id": "run", "artifact_uri": "s3://bucket/model.json", "metrics": {"mean_mse": 0.5}, "version": 1,
    }),
    ("POST", "/api/v1/models/{model_id}/train"): Request({"model_id": M}, body={"dataset": _DATASET, "cv": _CV, "seed": 1}),
    ("POST", "/api/v1/models/{model_id}/train/async"): Request({"model_id": M}, body={"dataset": _DATASET, "cv": _CV}),
    ("POST", "/api/v1/models/{model_id}/predict"): Request({"model_id": M}, body=_GENERATE),
    ("POST", "/api/v1/models/tune"): Request(body=_TUNE),
    ("POST", "/api/v1/models/tune/async"): Request(body=_TUNE),
    ("POST", "/api/v1/models/automl"): Request(body=_AUTOML),
    ("POST", "/api/v1/models/automl/async"): Request(body=_AUTOML),
    ("POST", "/api/v1/universes"): Request(body={
        "name": "universe", "description": "a note",
        "members": [{"symbol": "GSPC", "from": "2005-01-01", "to": "2010-01-01T00:00:00Z"}],
    }),
    ("PATCH", "/api/v1/universes/{universe_id}"): Request({"universe_id": U}, body={
        "name": "universe 2", "description": "a note",
        "members": [{"symbol": "IXIC", "from": "2005-01-01T00:00:00+00:00", "to": "2010-01-01"}], "version": 1,
    }),
    ("GET", "/api/v1/universes/{universe_id}/members"): Request({"universe_id": U}, {"at": "2008-01-01T00:00:00Z"}),
    ("POST", "/api/v1/keys"): Request(body={"name": "alice's notebook", "role": "read"}),
    ("GET", "/api/v1/audit"): Request(query={"since": "2018-01-01", "until": "2030-01-01T00:00:00Z"}),
    ("GET", "/api/v1/market-data/{symbol}/bars"): Request(
        {"symbol": "GSPC"}, {"timeframe": "1d", "start": "2018-01-01", "end": "2018-02-01T00:00:00Z"}
    ),
    ("POST", "/api/v1/market-data/{symbol}/bars"): Request({"symbol": "NEWBARS"}, body={"bars": [_BAR]}, upload=True),
    ("GET", "/api/v1/market-data/macro/{series}"): Request(
        {"series": "VIX"}, {"start": "2018-01-01", "end": "2018-02-01", "as_of": "2018-03-01T00:00:00+01:00"}
    ),
    ("POST", "/api/v1/market-data/macro/{series}"): Request({"series": "NEWSERIES"}, body={
        "records": [{"observation_date": "2018-01-01", "available_at": "2018-01-02", "value": 1.0}],
    }, upload=True),
    ("GET", "/api/v1/market-data/{symbol}/fundamentals"): Request({"symbol": "EDGE"}, {"field": "eps", "as_of": "2019-01-01"}),
    ("POST", "/api/v1/market-data/{symbol}/fundamentals"): Request({"symbol": "NEWFUND"}, body={
        "records": [{"period_end": "2018-09-30", "available_at": "2018-10-25", "field": "eps", "value": 1.0}],
    }, upload=True),
    ("GET", "/api/v1/market-data/{symbol}/news"): Request({"symbol": "EDGE"}, {"start": "2018-01-01", "end": "2019-01-01"}),
    ("POST", "/api/v1/market-data/{symbol}/news"): Request({"symbol": "NEWNEWS"}, body={
        "articles": [{"published_at": "2018-01-02T14:30:00Z", "headline": "Stocks rise"}],
    }, upload=True),
}


_PANEL = {"universe": "SP20", "timeframe": "1d", "start_date": "2015-01-01", "end_date": "2016-01-01T00:00:00Z"}
_PANEL_SYMBOLS = {k: v for k, v in _PANEL.items() if k != "universe"} | {"symbols": ["GSPC", "IXIC"]}
_EVALUATION = {"model_id": M, "horizon": 5, "n_quantiles": 5, "weighting": "equal", "cost_bps": 10.0, "bars_per_year": 252}
_EVALUATION_URI = {"out_of_fold_uri": "file:///data/objects/studies/s/out_of_fold/a.parquet", "horizon": 5}
VALID |= {
    ("POST", "/api/v1/features/{feature_id}/panels"): Request({"feature_id": F}, body=_PANEL),
    ("POST", "/api/v1/features/{feature_id}/panels/async"): Request({"feature_id": F}, body=_PANEL),
    ("POST", "/api/v1/features/panels"): Request(body={"feature_ids": [F]} | _PANEL),
    ("POST", "/api/v1/features/panels/async"): Request(body={"feature_ids": [F]} | _PANEL),
    ("GET", "/api/v1/models/out-of-fold"): Request(query={"uri": _EVALUATION_URI["out_of_fold_uri"], "format": "json"}),
    ("POST", "/api/v1/evaluations"): Request(body=_EVALUATION),
    ("POST", "/api/v1/evaluations/async"): Request(body=_EVALUATION),
    ("GET", "/api/v1/features/{feature_id}/datasets"): Request({"feature_id": F}, {"symbol": "GSPC", "timeframe": "1d"}),
}


def _pooled(body: dict[str, Any], **source: Any) -> dict[str, Any]:
    """``body`` with its dataset drawn from a universe or a list of symbols instead of one symbol."""
    dataset = {k: v for k, v in body["dataset"].items() if k != "symbol"} | source
    return body | {"dataset": dataset}


_RANGE = {k: v for k, v in _GENERATE.items() if k != "symbol"}
_EVALUATION_VARIANTS = [Request(body=_EVALUATION_URI)] + [
    Request(body=_EVALUATION | {"predict": predict})
    for predict in (_GENERATE, _RANGE | {"universe": "SP20"}, _RANGE | {"symbols": ["GSPC"]})
]

#: Further valid requests of an operation whose fields exclude each other (one symbol, a
#: universe or a list of symbols): together with ``VALID`` they set every bounded string.
VARIANTS: dict[tuple[str, str], list[Request]] = {
    ("POST", "/api/v1/features/{feature_id}/panels"): [Request({"feature_id": F}, body=_PANEL_SYMBOLS)],
    ("POST", "/api/v1/features/{feature_id}/panels/async"): [Request({"feature_id": F}, body=_PANEL_SYMBOLS)],
    ("POST", "/api/v1/features/panels"): [Request(body={"feature_ids": [F]} | _PANEL_SYMBOLS)],
    ("POST", "/api/v1/features/panels/async"): [Request(body={"feature_ids": [F]} | _PANEL_SYMBOLS)],
    ("POST", "/api/v1/evaluations"): _EVALUATION_VARIANTS,
    ("POST", "/api/v1/evaluations/async"): _EVALUATION_VARIANTS,
    ("POST", "/api/v1/models/{model_id}/predict"): [
        Request({"model_id": M}, body={k: v for k, v in _GENERATE.items() if k != "symbol"} | {"universe": "SP20"}),
        Request({"model_id": M}, body={k: v for k, v in _GENERATE.items() if k != "symbol"} | {"symbols": ["GSPC"]}),
    ],
} | {
    operation: [replace(VALID[operation], body=_pooled(VALID[operation].body, universe="SP20")),
                replace(VALID[operation], body=_pooled(VALID[operation].body, symbols=["GSPC", "IXIC"]))]
    for operation in [
        ("POST", "/api/v1/models/{model_id}/train"), ("POST", "/api/v1/models/{model_id}/train/async"),
        ("POST", "/api/v1/models/tune"), ("POST", "/api/v1/models/tune/async"),
        ("POST", "/api/v1/models/automl"), ("POST", "/api/v1/models/automl/async"),
    ]
}


def valid_requests(operation: tuple[str, str]) -> list[Request]:
    """The operation's valid request and its variants."""
    return [VALID[operation], *VARIANTS.get(operation, [])]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    request: Request
    where: tuple[str, ...]  # the location of the bad value, e.g. ("body", "dataset", "symbol")
    expect: str  # "field": a validation error at ``where``; "value": a 422 whose detail quotes the value
    value: Any = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {'.'.join(map(str, self.where))}={self.value!r}"


# -- the OpenAPI document -----------------------------------------------------------------
def openapi() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="alphaforge-openapi-") as tmp:
        return create_app(Settings(data_dir=Path(tmp))).openapi()  # no I/O until started


def resolve(doc: dict, schema: dict) -> list[dict]:
    """The alternatives a schema allows, with $refs and anyOf/oneOf resolved."""
    if "$ref" in schema:
        target = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolve(doc, {**target, **{k: v for k, v in schema.items() if k != "$ref"}})
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return [alt for sub in schema[key] for alt in resolve(doc, {**rest, **sub})]
    return [schema]


def is_plain_string(schema: dict) -> bool:
    """A string a client writes freely (not an enum, constant, id or date/time)."""
    return schema.get("type") == "string" and not ({"enum", "const", "format"} & schema.keys())


@dataclass(frozen=True)
class Key:
    """A step in a body path: the key ``name`` of a free dict itself."""

    name: str


@dataclass(frozen=True)
class Entry:
    """A step in a body path: the value under key ``name`` of a free dict."""

    name: str


def schema_leaves(doc: dict, schema: dict, path: tuple = (), seen: frozenset = frozenset()) -> Iterator[tuple[tuple, dict]]:
    """(schema path, schema) of every string a request body can hold; keys of free dicts
    whose names are constrained appear as "*key", their values under "*", list items as "[]"."""
    for alt in resolve(doc, schema):
        if alt.get("type") == "string":
            yield path, alt
        for key, sub in alt.get("properties", {}).items():
            if (alt.get("title"), key) not in seen:
                yield from schema_leaves(doc, sub, path + (key,), seen | {(alt.get("title"), key)})
        if "propertyNames" in alt:
            yield path + ("*key",), {"type": "string", **alt["propertyNames"]}
        if isinstance(alt.get("additionalProperties"), dict):
            yield from schema_leaves(doc, alt["additionalProperties"], path + ("*",), seen)
        if "items" in alt:
            yield from schema_leaves(doc, alt["items"], path + ("[]",), seen)


def value_leaves(doc: dict, schema: dict, value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any, dict]]:
    """(path, value, schema) of every string in a request body, keys of free dicts included."""
    alts = resolve(doc, schema)
    if isinstance(value, dict):
        alt = next((a for a in alts if "properties" in a or "additionalProperties" in a), {})
        props = alt.get("properties", {})
        for key, item in value.items():
            if key in props:
                yield from value_leaves(doc, props[key], item, path + (key,))
                continue
            yield path + (Key(key),), key, {"type": "string", **alt.get("propertyNames", {})}
            sub = alt.get("additionalProperties")
            yield from value_leaves(doc, sub if isinstance(sub, dict) else {}, item, path + (Entry(key),))
    elif isinstance(value, list):
        alt = next((a for a in alts if "items" in a), {})
        for i, item in enumerate(value):
            yield from value_leaves(doc, alt.get("items", {}), item, path + (i,))
    elif isinstance(value, str):
        yield path, value, next((a for a in alts if a.get("type") == "string"), {})


def schema_path(path: tuple) -> tuple:
    """A value path as a schema path (see ``schema_leaves``)."""
    names = {Key: "*key", Entry: "*", int: "[]"}
    return tuple(names.get(type(p), p) for p in path)


def operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield method.upper(), path, op


def needs_a_valid_request(doc: dict, op: dict) -> bool:
    """Takes a body, or a parameter that is free text or a date/time."""
    if "requestBody" in op:
        return True
    return any(
        is_plain_string(alt) or alt.get("format") == "date-time"
        for p in op.get("parameters", []) if p["in"] in ("path", "query")
        for alt in resolve(doc, p["schema"])
    )


def json_body_schema(op: dict) -> dict:
    return op["requestBody"]["content"]["application/json"]["schema"]


# -- mutating a request ---------------------------------------------------------------------
def with_value(body: Any, path: tuple, value: Any) -> Any:
    """A deep copy of ``body`` with the string at ``path`` replaced (a Key step renames the key)."""
    body = json.loads(json.dumps(body))
    *parents, last = path
    target = body
    for step in parents:
        target = target[step.name if isinstance(step, Entry) else step]
    if isinstance(last, Key):
        target[value] = target.pop(last.name)
    else:
        target[last.name if isinstance(last, Entry) else last] = value
    return body


def _loc(path: tuple) -> tuple[str, ...]:
    """Where a bad string at ``path`` is reported: the field, or the free dict holding it."""
    out: list[str] = ["body"]
    for step in path:
        if isinstance(step, (Key, Entry)):
            break
        out.append(str(step))
    return tuple(out)


def cases(doc: dict) -> list[Case]:
    out: list[Case] = []
    for method, path, op in operations(doc):
        request = VALID.get((method, path))
        if request is None:
            continue
        for param in op.get("parameters", []):
            where, name = param["in"], param["name"]
            if where not in ("path", "query"):
                continue
            alts = resolve(doc, param["schema"])
            bag = "path_params" if where == "path" else "query"
            given = getattr(request, bag).get(name, "")

            def mutated(value: str, bag: str = bag, name: str = name) -> Request:
                return replace(request, **{bag: {**getattr(request, bag), name: value}})

            if any(is_plain_string(a) for a in alts):
                out.append(Case(method, path, mutated(given + "\x00"), (where, name), "field", given + "\x00"))
                out += [Case(method, path, mutated(v), (where, name), "value", v) for v in FOLDING]
            if any(a.get("format") == "date-time" for a in alts):
                out += [Case(method, path, mutated(v), (where, name), "field", v) for v in OUT_OF_RANGE]
        if request.upload or request.body is None:
            continue
        seen: set[tuple] = set()  # a leaf shared by variants is made bad once
        leaves = [
            (request, leaf, value, schema)
            for request in valid_requests((method, path))
            for leaf, value, schema in value_leaves(doc, json_body_schema(op), request.body)
        ]
        for request, leaf, value, schema in leaves:
            if schema_path(leaf) in seen:
                continue
            seen.add(schema_path(leaf))
            loc = _loc(leaf)
            for bad in (value + "\x00", value[:1] + "\ud800" + value[1:]):
                out.append(Case(method, path, replace(request, body=with_value(request.body, leaf, bad)), loc, "field", bad))
            if "maxLength" in schema:
                long = "x" * (schema["maxLength"] + 1)
                out.append(Case(method, path, replace(request, body=with_value(request.body, leaf, long)), loc, "field", f"{len(long)} chars"))
            if schema.get("format") == "date-time":
                out += [Case(method, path, replace(request, body=with_value(request.body, leaf, v)), loc, "field", v) for v in OUT_OF_RANGE]
            if leaf and leaf[-1] == "symbol" or (len(leaf) > 1 and leaf[-2] == "symbols"):
                out += [Case(method, path, replace(request, body=with_value(request.body, leaf, v)), loc, "value", v) for v in FOLDING]
    return out
