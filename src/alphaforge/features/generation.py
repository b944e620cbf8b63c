"""Feature generation: bars -> version hash -> (cache hit | compute, store, record).

The version hash is computed from the definition and the source bars *before* the plugin
runs; a hit returns the stored dataset without computing anything. The Parquet object is
written before its row is committed, and the row's identity is unique, so concurrent
identical requests end with one row and one object.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from alphaforge import actor
from alphaforge.context import Context
from alphaforge.errors import InvalidInput, NotFound
from alphaforge.marketdata.bars import Timeframe, describe_fields, frame_to_records, present_fields
from alphaforge.marketdata.provider import BarRequest, BarWindow
from alphaforge.plugins.features import FeaturePlugin, needs_full_history, required_bar_fields
from alphaforge.schemas.features import FeatureGenerateRequest
from alphaforge.features import dataset_objects
from alphaforge.features.definitions import NOT_FOUND, resolve_definition
from alphaforge.features.identity import identity_document
from alphaforge.hashing import content_hash, utc_iso
from alphaforge.features.sources import PluginSources, gather_sources
from alphaforge.storage.db import utcnow
from alphaforge.storage.object_store import ObjectNotFound
from alphaforge.storage.parquet import float_block_to_parquet, from_parquet_bytes, to_parquet_bytes
from alphaforge.storage.tables import Feature, FeatureDataset, FeaturePanel

PREVIEW_ROWS = 10
HASH_SCHEMA = "alphaforge.feature-dataset/1"
#: Warm-up asked of the provider for recursive plugins: the whole stored history.
FULL_HISTORY = 10**9

Stored = TypeVar("Stored", FeatureDataset, FeaturePanel)


class NoBarsInRange(InvalidInput):
    """A 422 for one symbol; a panel member without bars in the range just has no rows."""


@dataclass
class GenerateResult:
    dataset: FeatureDataset
    #: The dataset's values (read back on a hit, as computed on a miss).
    frame: pd.DataFrame
    cached: bool

    @property
    def preview(self) -> list[dict[str, Any]]:
        return preview_records(self.frame)


@dataclass(frozen=True)
class Definition:
    """A snapshot of the feature row, so no session stays open while computing."""

    id: uuid.UUID
    plugin: FeaturePlugin
    storage_prefix: str


@dataclass
class DatasetPlan:
    """What a request would compute, and under which version hash (known before computing)."""

    definition: Definition
    symbol: str
    timeframe: Timeframe
    start: datetime
    end: datetime
    bars: pd.DataFrame
    in_range: int
    sources: PluginSources
    lineage: dict[str, Any]
    version_hash: str


def generate_dataset(
    ctx: Context, feature_id: uuid.UUID, request: FeatureGenerateRequest, *, force: bool = False
) -> GenerateResult:
    """``force`` (regenerate) recomputes and rewrites the object even on a hit; a new row
    is still only created when the hash changed."""
    plan = plan_dataset(ctx, feature_id, request)
    existing = _find(ctx, plan.definition.id, plan.version_hash)
    if existing is not None and not force:
        hit = _read_stored(ctx, existing)
        if hit is not None:
            return hit
    return _compute_and_store(ctx, plan, existing)


def cached_dataset(ctx: Context, feature_id: uuid.UUID, request: FeatureGenerateRequest) -> GenerateResult | None:
    """The stored dataset for this request without computing anything (None on a miss):
    the API answers a hit itself and sends a miss to a worker."""
    plan = plan_dataset(ctx, feature_id, request)
    existing = _find(ctx, plan.definition.id, plan.version_hash)
    return None if existing is None else _read_stored(ctx, existing)


_NAT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Values:
    """Computed values as the plugin gave them: a (columns x rows) float64 block over its
    timestamps. A batch of pieces is stored and previewed from these arrays; the DataFrame
    is made only when asked for (making one per piece cost more than encoding it)."""

    index: pd.DatetimeIndex
    columns: list[str]
    block: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.block.T, index=self.index, columns=self.columns, copy=False)

    def first(self) -> int | None:
        """The first timestamp in UTC nanoseconds (None: no rows)."""
        return None if len(self.index) == 0 else int(self.index[:1].as_unit("ns").asi8[0])

    def head(self, rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The first ``rows`` rows: UTC nanosecond stamps and float64 columns."""
        stamps = self.index[:rows].as_unit("ns").asi8
        return stamps, {c: self.block[at, :rows] for at, c in enumerate(self.columns)}

    def bundles(self) -> bool:
        """Can these values be a bundle's part (``float_blocks_to_parquet``'s layout, rows)?"""
        name = self.index.name
        return (isinstance(self.index, pd.DatetimeIndex) and isinstance(name, str) and name not in self.columns
                and len(set(self.columns)) == len(self.columns) and len(self.index) > 0
                and not (self.index.asi8 == _NAT).any())

    def parquet(self) -> bytes:
        """The values as a file of their own."""
        if self.bundles():
            return float_block_to_parquet(self.index, self.columns, self.block)
        return to_parquet_bytes(self.frame())


@dataclass
class Piece:
    """One dataset of a batch: its row, and its values when computed here (None: a hit,
    read by whoever needs it)."""

    dataset: FeatureDataset
    values: Values | None

    @property
    def frame(self) -> pd.DataFrame | None:
        return None if self.values is None else self.values.frame()


def generate_pieces(
    ctx: Context, feature_id: uuid.UUID, requests: list[FeatureGenerateRequest]
) -> list[Piece | None]:
    """Many single-symbol datasets of one feature (a panel's pieces), each planned and
    computed as ``generate_dataset`` would: the stored ones found in one query, the new rows
    committed in one transaction after their objects were written. None: no bars in range."""
    definition = load_definition(ctx, feature_id)
    plans: list[DatasetPlan | None] = []
    for request, window in zip(requests, many_feature_bars(ctx, definition.plugin, requests), strict=True):
        try:
            plans.append(plan_dataset(ctx, feature_id, request, definition, window))
        except NoBarsInRange:
            plans.append(None)
    stored = _find_many(ctx, definition.id, [p.version_hash for p in plans if p is not None])
    kept = set(_stored_objects(ctx, list(stored.values())))
    out: list[Piece | None] = [None] * len(plans)
    todo: list[tuple[int, DatasetPlan, FeatureDataset | None]] = []
    for at, plan in enumerate(plans):
        if plan is None:
            continue
        row = stored.get(plan.version_hash)
        if row is not None and row.version_hash in kept:
            out[at] = Piece(row, None)
        else:
            todo.append((at, plan, row))
    computed = compute_values(definition.plugin, [(p.bars, p.in_range, p.timeframe.value, p.sources) for _, p, _ in todo])
    uris = _store_values(ctx, [plan for _, plan, _ in todo], computed)  # every object stored before any row names it
    new: list[FeatureDataset] = []
    moved: list[FeatureDataset] = []
    for (at, plan, row), values, uri in zip(todo, computed, uris, strict=True):
        if row is None:
            row = _new_row(ctx, plan, values, uri)
            new.append(row)
        elif row.storage_uri != uri:  # its object was lost: the row now names the one just stored
            row.storage_uri = uri
            moved.append(row)
        out[at] = Piece(row, values)
    _repoint(ctx, moved)
    if new:
        committed = _insert_all(ctx, new)
        _set_storage_uri_once(ctx, definition.id, ctx.objects.uri(definition.storage_prefix))
        out = [p if p is None else Piece(committed.get(p.dataset.version_hash, p.dataset), p.values) for p in out]
    return out


def _store_values(ctx: Context, plans: list[DatasetPlan], computed: list[Values]) -> list[str]:
    """Write computed pieces; each one's URI. The pieces of one timeframe and column layout
    (every piece of a panel's batch) go into one bundle; a piece alone into its own object."""
    uris: list[str | None] = [None] * len(plans)
    groups: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    for at, (plan, values) in enumerate(zip(plans, computed, strict=True)):
        if values.bundles():
            groups.setdefault((plan.timeframe.value, tuple(values.columns), str(values.index.dtype)), []).append(at)
    for (timeframe, _, _), members in groups.items():
        if len(members) < 2:
            continue
        first = plans[members[0]]
        hashes = [plans[at].version_hash for at in members]
        key = f"{first.definition.storage_prefix}/{timeframe}/bundle-{content_hash(hashes)}.parquet"
        parts = [(computed[at].index, computed[at].columns, computed[at].block) for at in members]
        for at, uri in zip(members, dataset_objects.put_bundle(ctx, key, parts), strict=True):
            uris[at] = uri
    for at, uri in enumerate(uris):
        if uri is None:
            uris[at] = ctx.objects.put(_own_key(plans[at]), computed[at].parquet())
    return [uri for uri in uris if uri is not None]


def _repoint(ctx: Context, rows: list[FeatureDataset]) -> None:
    """Point rows whose object was lost at the object their values were stored in again."""
    if rows:
        with ctx.db.session() as session:
            session.execute(update(FeatureDataset), [{"id": row.id, "storage_uri": row.storage_uri} for row in rows])


def _stored_objects(ctx: Context, rows: list[FeatureDataset]) -> list[str]:
    """The version hashes of the rows whose objects are stored (a lost one is computed again)."""
    found = dataset_objects.exists_many(ctx, [row.storage_uri for row in rows])
    return [row.version_hash for row, there in zip(rows, found, strict=True) if there]


def _find_many(ctx: Context, feature_id: uuid.UUID, hashes: list[str]) -> dict[str, FeatureDataset]:
    found: dict[str, FeatureDataset] = {}
    with ctx.db.session() as session:
        for at in range(0, len(hashes), 500):
            query = select(FeatureDataset).where(
                FeatureDataset.feature_id == feature_id, FeatureDataset.version_hash.in_(hashes[at:at + 500])
            )
            found.update((row.version_hash, row) for row in session.scalars(query))
    return found


def _insert_all(ctx: Context, rows: list[FeatureDataset]) -> dict[str, FeatureDataset]:
    """The committed rows by version hash: one transaction; when a concurrent request
    committed some of the same identities first, row by row (each then finds the one already
    there, whose id is the one to answer with: the rolled-back rows never got one)."""
    try:
        with ctx.db.session() as session:  # one executemany: the unit of work cost ~0.1 ms a row
            session.execute(insert(FeatureDataset), [{c: getattr(row, c) for c in _BULK_FIELDS} for row in rows])
        return {row.version_hash: row for row in rows}
    except IntegrityError:
        committed: dict[str, FeatureDataset] = {}
        for row in rows:
            made = FeatureDataset(**{c: getattr(row, c) for c in _DATASET_FIELDS})
            committed[row.version_hash] = insert_or_get(ctx, made, lambda r=row: _find(ctx, r.feature_id, r.version_hash))
        return committed


_DATASET_FIELDS = (
    "feature_id", "symbol", "timeframe", "start_date", "end_date", "version_hash", "storage_uri", "row_count",
    "columns", "source_fingerprint", "lineage",
)
#: What a bulk insert writes: the fields and what the row's defaults would be (``_encoded`` sets them).
_BULK_FIELDS = (*_DATASET_FIELDS, "id", "created_at", "created_by")


def _read_stored(ctx: Context, existing: FeatureDataset) -> GenerateResult | None:
    """A hit, or None when its object was lost (then it is computed and stored again)."""
    try:
        return GenerateResult(existing, dataset_objects.read_frame(ctx, existing.storage_uri), cached=True)
    except ObjectNotFound:
        return None


def plan_dataset(
    ctx: Context, feature_id: uuid.UUID, request: FeatureGenerateRequest, definition: Definition | None = None,
    window: BarWindow | None = None,
) -> DatasetPlan:
    """The dataset a request names and its version hash, read from the bars without computing.
    ``definition``: the feature's, already loaded (a panel plans one piece per member);
    ``window``: the bars ``feature_bars`` would read, read already (``many_feature_bars``)."""
    if definition is None:
        definition = check_generate_request(ctx, feature_id, request)
    plugin = definition.plugin
    symbol, start, end = request.symbol, request.start_date, request.end_date

    if window is None:
        bars, in_range = feature_bars(ctx, plugin, symbol, request.timeframe, start, end)
        bars_fingerprint = None
    else:
        bars, bars_fingerprint = window.bars, window.fingerprint
        in_range = check_bars(plugin, symbol, request.timeframe, start, end, bars)
    sources = gather_sources(ctx, plugin, symbol, request.timeframe.value, bars, end)

    span = {"start": utc_iso(start), "end": utc_iso(end), "warmup_bars": len(bars) - in_range}
    lineage = identity_document(HASH_SCHEMA, plugin, symbol, request.timeframe.value, bars, span, sources.lineage,
                                bars_fingerprint)
    return DatasetPlan(definition, symbol, request.timeframe, start, end, bars, in_range, sources, lineage,
                 content_hash(lineage))


def _compute_and_store(ctx: Context, plan: DatasetPlan, existing: FeatureDataset | None) -> GenerateResult:
    (values,) = compute_values(plan.definition.plugin, [(plan.bars, plan.in_range, plan.timeframe.value, plan.sources)])
    uri = ctx.objects.put(_own_key(plan), values.parquet())
    if existing is not None and existing.storage_uri != uri:  # it was a bundle's part: it now has its own object
        existing.storage_uri = uri
        _repoint(ctx, [existing])
    row = existing or insert_or_get(ctx, _new_row(ctx, plan, values, uri),
                                    lambda: _find(ctx, plan.definition.id, plan.version_hash))
    _set_storage_uri_once(ctx, plan.definition.id, ctx.objects.uri(plan.definition.storage_prefix))
    return GenerateResult(row, values.frame(), cached=False)


def _own_key(plan: DatasetPlan) -> str:
    """A dataset's own object. One folder per timeframe, not per symbol: a new folder per
    piece (a mkdir, ~0.4 ms on an overlay file system) was a tenth of a piece's cost."""
    return f"{plan.definition.storage_prefix}/{plan.timeframe.value}/{plan.symbol}.{plan.version_hash}.parquet"


def _new_row(ctx: Context, plan: DatasetPlan, values: Values, uri: str) -> FeatureDataset:
    """The row to commit (not yet added) for values stored at ``uri``."""
    return FeatureDataset(
        id=uuid.uuid4(),
        created_at=utcnow(),
        created_by=actor.current(),
        feature_id=plan.definition.id,
        symbol=plan.symbol,
        timeframe=plan.timeframe.value,
        start_date=plan.start,
        end_date=plan.end,
        version_hash=plan.version_hash,
        storage_uri=uri,
        row_count=len(values.index),
        columns=list(values.columns),
        source_fingerprint=plan.lineage["source_fingerprint"],
        lineage=plan.lineage,
    )


def feature_bars(
    ctx: Context, plugin: FeaturePlugin, symbol: str, timeframe: Timeframe, start: datetime, end: datetime,
    extra_warmup: int = 0,
) -> tuple[pd.DataFrame, int]:
    """The bars a plugin needs for ``[start, end)``: the range plus its warm-up (and
    ``extra_warmup`` more bars); also how many bars fall in the range (422 when none)."""
    bars = ctx.bars.get_bars(symbol, timeframe, start, end, warmup=_warmup(plugin, extra_warmup))
    return bars, check_bars(plugin, symbol, timeframe, start, end, bars)


def many_feature_bars(ctx: Context, plugin: FeaturePlugin, requests: list[FeatureGenerateRequest]) -> list[BarWindow]:
    """``feature_bars``' bars for many requests in one provider call (checked by ``plan_dataset``)."""
    warmup = _warmup(plugin, 0)
    return ctx.bars.get_bars_many(
        [BarRequest(r.symbol, r.timeframe, r.start_date, r.end_date, warmup) for r in requests]
    )


def _warmup(plugin: FeaturePlugin, extra: int) -> int:
    return FULL_HISTORY if needs_full_history(plugin) else plugin.lookback + extra


def check_bars(
    plugin: FeaturePlugin, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, bars: pd.DataFrame
) -> int:
    """How many of ``bars`` fall in the range: 422 when none, or when they lack a field the
    plugin reads."""
    in_range = len(bars) - int(bars.index.searchsorted(pd.Timestamp(start), side="left"))
    if in_range == 0:
        raise NoBarsInRange(
            f"no {timeframe.value} bars for {symbol} in [{utc_iso(start)}, {utc_iso(end)}); "
            "check the symbol and range with GET /api/v1/market-data/symbols"
        )
    present = present_fields(bars)
    missing = [c for c in required_bar_fields(plugin) if c not in present]
    if missing:
        raise InvalidInput(
            f"{plugin.key} reads the bar fields {', '.join(required_bar_fields(plugin))}, and the "
            f"{timeframe.value} bars of {symbol} lack {', '.join(missing)} (they hold {describe_fields(present)}): "
            "choose a feature that reads only what the series holds, e.g. one computed from close",
            missing_fields=missing,
        )
    return in_range


def check_generate_request(ctx: Context, feature_id: uuid.UUID, request: FeatureGenerateRequest) -> Definition:
    """The refusals that need no bars: unknown feature (404), a cross-sectional feature
    (422: it has values only over many symbols). (The request refused a bad symbol or range
    when it was parsed.)"""
    definition = load_definition(ctx, feature_id)
    if not definition.plugin.per_symbol:
        raise InvalidInput(
            f"{definition.plugin.key} is cross-sectional: it combines the symbols of a universe on each date, so "
            f"it needs a universe or symbols, not one symbol; use POST /api/v1/features/{feature_id}/panels",
            field="symbol",
        )
    return definition


def list_datasets(
    ctx: Context, feature_id: uuid.UUID, symbol: str | None = None, timeframe: str | None = None,
    skip: int = 0, limit: int | None = None,
) -> list[FeatureDataset]:
    """The feature's datasets, oldest first: of one symbol and timeframe, or of every one."""
    with ctx.db.session() as session:
        if session.get(Feature, feature_id) is None:
            raise NotFound(NOT_FOUND)
        query = select(FeatureDataset).where(FeatureDataset.feature_id == feature_id)
        if symbol is not None:
            query = query.where(FeatureDataset.symbol == symbol)
        if timeframe is not None:
            query = query.where(FeatureDataset.timeframe == timeframe)
        query = query.order_by(FeatureDataset.created_at, FeatureDataset.id).offset(skip).limit(limit)
        return list(session.scalars(query))


#: Rows the JSON form of stored values (a dataset's, a panel's) may hold; more are read as Parquet.
JSON_MAX_ROWS = 200_000
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
DATASET_NOT_FOUND = "Dataset not found"


def get_dataset(ctx: Context, feature_id: uuid.UUID, dataset_id: uuid.UUID) -> FeatureDataset:
    """One stored version of this feature (404 for an unknown feature, or a dataset of another)."""
    with ctx.db.session() as session:
        if session.get(Feature, feature_id) is None:
            raise NotFound(NOT_FOUND)
        dataset = session.get(FeatureDataset, dataset_id)
    if dataset is None or dataset.feature_id != feature_id:
        raise NotFound(DATASET_NOT_FOUND)
    return dataset


def dataset_parquet(ctx: Context, dataset: FeatureDataset) -> bytes:
    """The dataset as one Parquet file: the timestamp index and the feature's outputs."""
    return stored_object(ctx, dataset.storage_uri, "the dataset's", f"regenerate it (POST /api/v1/features/"
                         f"{dataset.feature_id}/regenerate with its symbol, timeframe and range)",
                         lambda: dataset_objects.read_parquet(ctx, dataset.storage_uri))


def dataset_records(ctx: Context, dataset: FeatureDataset) -> list[dict[str, Any]]:
    return bounded_records(dataset.row_count, JSON_MAX_ROWS, lambda: dataset_parquet(ctx, dataset), "the dataset")


def stored_object(
    ctx: Context, uri: str, whose: str, remedy: str, read: Callable[[], bytes] | None = None
) -> bytes:
    """A stored dataset's or panel's bytes (``read``: how, when not the object at ``uri``
    itself); a 404 saying how to make them again when lost."""
    try:
        return read() if read is not None else ctx.objects.get(ctx.objects.key_of(uri))
    except ObjectNotFound:
        raise NotFound(f"{whose} stored object is gone; {remedy}") from None


def bounded_records(row_count: int, limit: int, read: Callable[[], bytes], what: str) -> list[dict[str, Any]]:
    """JSON records of stored values, refused (422) above ``limit`` rows: JSON of millions
    of rows is no way to move them."""
    check_row_cap(row_count, limit, what)
    return frame_to_records(from_parquet_bytes(read()))


def check_row_cap(row_count: int, limit: int, what: str) -> None:
    if row_count > limit:
        raise InvalidInput(
            f"{what} has {row_count} rows, over the {limit} a JSON answer may hold: ask for format=parquet",
            field="format",
        )


def compute_frame(
    plugin: FeaturePlugin, bars: pd.DataFrame, in_range: int, timeframe: str = "1d",
    sources: PluginSources | None = None,
) -> pd.DataFrame:
    """Run the plugin over warm-up + range bars with its gathered sources; keep the last
    ``in_range`` rows."""
    return compute_frames(plugin, [(bars, in_range, timeframe, sources)])[0]


Job = tuple[pd.DataFrame, int, str, "PluginSources | None"]


def compute_frames(plugin: FeaturePlugin, jobs: list[Job]) -> list[pd.DataFrame]:
    """``compute_frame`` for several symbols' bars in one ``compute_batch`` call (a plugin
    that vectorises across symbols computes them together)."""
    return [values.frame() for values in compute_values(plugin, jobs)]


def compute_values(plugin: FeaturePlugin, jobs: list[Job]) -> list[Values]:
    """``compute_frames``' values as arrays (each job's last ``in_range`` rows)."""
    if not jobs:
        return []
    batch = [(sources or PluginSources()).inputs(bars, timeframe) for bars, _, timeframe, sources in jobs]
    columns = plugin.output_columns
    out = []
    for (bars, in_range, _, _), values in zip(jobs, plugin.compute_batch(batch), strict=True):
        if list(values) != columns:
            raise RuntimeError(f"plugin {plugin.key} returned columns {list(values)}, declared {columns}")
        for name, array in values.items():
            if len(array) != len(bars):
                raise RuntimeError(f"plugin {plugin.key} column {name} has {len(array)} rows for {len(bars)} bars")
        out.append(_in_range(values, columns, bars.index, in_range))
    return out


def _in_range(values: Mapping[str, Any], columns: list[str], index: pd.Index, in_range: int) -> Values:
    """The last ``in_range`` rows as one (columns x rows) block, written straight from the
    plugin's arrays: pandas consolidating a dict of columns copied every value a second
    time (~20 % of a 157-column batch)."""
    block = np.empty((len(columns), in_range), dtype="float64")
    for at, name in enumerate(columns):
        block[at] = np.asarray(values[name], dtype="float64")[len(index) - in_range:]
    return Values(index[len(index) - in_range:], columns, block)


def read_frame(ctx: Context, uri: str) -> pd.DataFrame:
    """A stored dataset's values (its own object, or its part of a bundle)."""
    return dataset_objects.read_frame(ctx, uri)


def preview_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame_to_records(frame.head(PREVIEW_ROWS))


def load_definition(ctx: Context, feature_id: uuid.UUID) -> Definition:
    """The feature row as a snapshot (404 when unknown), the definitions it names by id bound
    as they are now (422 when one is gone)."""
    with ctx.db.session() as session:
        feature = session.get(Feature, feature_id)
        if feature is None:
            raise NotFound(NOT_FOUND)
        key, category, parameters = feature.plugin_key, feature.type, feature.parameters
        prefix = ctx.objects.key_of(feature.storage_uri) if feature.storage_uri else f"features/{feature.id}"
    plugin = resolve_definition(ctx, key, category, parameters, (feature_id,))
    return Definition(id=feature_id, plugin=plugin, storage_prefix=prefix)


def _find(ctx: Context, feature_id: uuid.UUID, version_hash: str) -> FeatureDataset | None:
    with ctx.db.session() as session:
        return session.scalars(
            select(FeatureDataset).where(
                FeatureDataset.feature_id == feature_id, FeatureDataset.version_hash == version_hash
            )
        ).one_or_none()


def insert_or_get(ctx: Context, row: Stored, find: Callable[[], Stored | None]) -> Stored:
    """Commit ``row``, or, when a concurrent identical request committed its identity first,
    ``find`` that one (a dataset's or a panel's: same hash, same object key)."""
    try:
        with ctx.db.session() as session:
            session.add(row)
        return row
    except IntegrityError:
        found = find()
        if found is None:  # the feature itself was deleted meanwhile
            raise NotFound(NOT_FOUND) from None
        return found


def _set_storage_uri_once(ctx: Context, feature_id: uuid.UUID, prefix_uri: str) -> None:
    """Record where the definition's datasets live; a system write, so no version bump."""
    with ctx.db.session() as session:
        session.execute(
            update(Feature)
            .where(Feature.id == feature_id, Feature.storage_uri.is_(None))
            .values(storage_uri=prefix_uri)
            .execution_options(synchronize_session=False)
        )
