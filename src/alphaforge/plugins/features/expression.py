"""Expression features: a definition that IS a formula (``mean(close, 5) / close``), or a
dict of named formulas that become the dataset's columns.

Names a formula may read: the bar fields, and the inputs the definition declares under an
alias of its own: ``macro`` series and ``fundamentals`` fields of the bars' symbol (each read
as known at each bar: point in time), and other per-symbol ``features`` (a plugin key with
its parameters, or ``feature_id``: a stored per-symbol definition, bound to its plugin when the
definition is resolved; the engine computes and caches each as any input feature).

The formulas are parsed by ``alphaforge.expressions`` (never evaluated as Python) when the
definition is validated: a look-ahead (``ref(close, -1)``), a window that is not a positive
integer constant or an unknown name is a 422 pointing at its position. The version hash
reads each formula's canonical text, so spellings that differ only in whitespace or number
format share one dataset. Causal by construction (every operator reads the current and
earlier bars only); the warm-up is the deepest chain of windows over the inputs' own
warm-ups; a formula with ``ewm`` (or an input that is recursive) warms up over the whole
history.

Cross-sectional operators (``cs_rank``...) need every symbol of a date: they belong to
``cross_sectional.expression``, which reads a per-symbol feature's panel.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, ClassVar, Self

import numpy as np
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from alphaforge.errors import InvalidInput
from alphaforge.expressions import (
    BAR_FIELDS,
    FUNCTIONS,
    Expr,
    PanelData,
    canonical,
    evaluate,
    fields_of,
    is_cross_sectional,
    is_recursive,
    parse,
    warmup,
)
from alphaforge.marketdata.bars import BAR_COLUMNS
from alphaforge.plugins.base import PluginParams
from alphaforge.plugins.features.base import FeatureInputs, FeaturePlugin, feature_plugins
from alphaforge.plugins.features.cross_sectional import UUID_PATTERN
from alphaforge.plugins.features.fundamental import FIELD_PATTERN
from alphaforge.plugins.features.macro import SERIES_PATTERN

#: Named formulas one definition may hold (Alpha158 is 157 of them).
MAX_EXPRESSIONS = 500
MAX_EXPRESSION_CHARS = 2_000
MAX_INPUTS = 50
DEFAULT_EXPRESSION = "close / mean(close, 20) - 1"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class FeatureInput(PluginParams):
    plugin_key: str = Field(max_length=100, description="a per-symbol feature plugin, e.g. technical.rsi")
    parameters: dict[str, Any] = Field(default_factory=dict)
    column: str | None = Field(None, max_length=100, description="which of its columns (left out: its only one)")


class FeatureRef(PluginParams):
    feature_id: str = Field(pattern=UUID_PATTERN, description="id of a stored per-symbol feature definition")
    column: str | None = Field(None, max_length=100, description="which of its columns (left out: its only one)")

    @field_validator("feature_id")
    @classmethod
    def _canonical(cls, value: str) -> str:
        """One spelling per id, so the same reference always gives the same version hash."""
        return str(uuid.UUID(value))


def _input_kind(value: Any) -> str:
    """An input naming ``feature_id`` is a reference to a stored definition; any other, a plugin key."""
    named = value if isinstance(value, dict) else vars(value) if isinstance(value, PluginParams) else {}
    return "id" if "feature_id" in named else "key"


#: An input feature: a plugin by key with its parameters, or a stored definition by id.
InputSpec = Annotated[
    Annotated[FeatureInput, Tag("key")] | Annotated[FeatureRef, Tag("id")], Discriminator(_input_kind)
]


class ExpressionParams(PluginParams):
    expression: str | None = Field(
        None, min_length=1, max_length=MAX_EXPRESSION_CHARS,
        description=f"one formula (default, an example: {DEFAULT_EXPRESSION!r}); "
        "the language and its operators: GET /api/v1/features/library",
    )
    name: str | None = Field(None, description="the column of a single `expression` (default 'value')")
    expressions: dict[str, str] | None = Field(
        None, min_length=1, max_length=MAX_EXPRESSIONS,
        description="named formulas instead of one `expression`: each name becomes a column (columns in name order)",
    )
    macro: dict[str, str] | None = Field(
        None, max_length=MAX_INPUTS, description="alias -> macro series, read as known at each bar, e.g. {\"rate\": \"DGS10\"}",
    )
    fundamentals: dict[str, str] | None = Field(
        None, max_length=MAX_INPUTS,
        description="alias -> fundamentals field of the bars' symbol, read as known at each bar, e.g. {\"eps\": \"eps\"}",
    )
    features: dict[str, InputSpec] | None = Field(
        None, max_length=MAX_INPUTS,
        description="alias -> another per-symbol feature, by plugin key, e.g. {\"rsi\": {\"plugin_key\": "
        "\"technical.rsi\", \"parameters\": {\"period\": 14}}}, or a stored definition by id, e.g. "
        "{\"rsi\": {\"feature_id\": \"<uuid>\", \"column\": \"rsi\"}}",
    )

    @model_validator(mode="after")
    def _canonical(self) -> ExpressionParams:
        """One form whatever the spelling: ``expressions`` of canonical texts in name order
        (a single ``expression`` becomes ``{name: text}``), so equal formulas hash equal. (A
        JSON object's key order is not kept by every store: PostgreSQL's JSONB reorders it.)"""
        if self.expressions is not None and (self.expression is not None or self.name is not None):
            raise ValueError("give either `expression` (and `name`) or `expressions`, not both")
        names = BAR_FIELDS | set(self._aliases())
        single = self.expressions is None
        named = self.expressions if self.expressions is not None else {
            self.name or "value": self.expression or DEFAULT_EXPRESSION
        }
        texts: dict[str, str] = {}
        for name, text in named.items():
            where = "expression" if single else f"expressions[{name!r}]"
            if not _NAME.match(name):
                raise ValueError(f"column name {name!r} must be an identifier of at most 64 characters "
                                 "(letters, digits, _; not starting with a digit)")
            if len(text) > MAX_EXPRESSION_CHARS:
                raise ValueError(f"{where} is longer than {MAX_EXPRESSION_CHARS} characters")
            try:
                expr = parse(text, fields=names)
            except InvalidInput as exc:
                raise ValueError(f"{where}: {exc.message}") from None
            if is_cross_sectional(expr):
                raise ValueError(
                    f"{where} uses a cross-sectional operator (cs_rank, cs_zscore, cs_demean): those combine the "
                    "symbols of a date, so they belong to a cross_sectional.expression over this feature"
                )
            texts[name] = canonical(expr)
        object.__setattr__(self, "expressions", dict(sorted(texts.items())))
        object.__setattr__(self, "expression", None)
        object.__setattr__(self, "name", None)
        return self

    def _aliases(self) -> list[str]:
        """The declared inputs' aliases, each an identifier no other name uses."""
        aliases: list[str] = []
        for kind, pattern, entries in (
            ("macro", SERIES_PATTERN, self.macro), ("fundamentals", FIELD_PATTERN, self.fundamentals),
        ):
            for alias, source in (entries or {}).items():
                if not re.match(pattern, source):
                    raise ValueError(f"{kind}[{alias!r}]: {source!r} is not a valid name (pattern {pattern})")
                aliases.append(alias)
        for alias, spec in (self.features or {}).items():
            if isinstance(spec, FeatureInput):  # a reference is checked when the definition is resolved
                _input_plugin(alias, spec)
            aliases.append(alias)
        for alias in aliases:
            if not _NAME.match(alias) or alias in BAR_FIELDS or alias in FUNCTIONS:
                raise ValueError(f"input alias {alias!r} must be an identifier other than a bar field or a function name")
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"input aliases must be distinct across macro, fundamentals and features: {sorted(aliases)}")
        return aliases


def _input_plugin(alias: str, spec: FeatureInput) -> tuple[FeaturePlugin, str]:
    """The input feature's plugin and the column the alias reads (422 naming the problem)."""
    try:
        plugin = feature_plugins.get(spec.plugin_key).from_parameters(spec.parameters)
    except InvalidInput as exc:
        raise ValueError(f"features[{alias!r}]: {exc.message}") from None
    if not plugin.per_symbol or isinstance(plugin, ExpressionFeature):
        raise ValueError(f"features[{alias!r}]: {spec.plugin_key} cannot be an input (per-symbol plugins only, "
                         "not another expression: write its formula here instead)")
    return plugin, _input_column(alias, spec.plugin_key, plugin, spec.column)


def _input_column(alias: str, what: str, plugin: FeaturePlugin, column: str | None) -> str:
    """The column the alias reads: ``column``, or the input's only one."""
    columns = plugin.output_columns
    chosen = column if column is not None else (columns[0] if len(columns) == 1 else None)
    if chosen not in columns:
        raise ValueError(f"features[{alias!r}]: name `column`, one of {what}'s columns {columns}")
    return chosen


@feature_plugins.register
class ExpressionFeature(FeaturePlugin):
    key = "automated.expression"
    category = "automated"
    description = ("Formulas over the bar fields, macro series, fundamentals and other features in alphaforge's "
                   "expression language (ref, mean, std, slope, corr, ewm, ...): one column per named formula, "
                   "causal by construction")
    Params = ExpressionParams
    libraries: ClassVar[tuple[str, ...]] = ("numpy", "pandas")
    #: The plugins of the definitions named by id (``with_references``), by feature id.
    _references: Mapping[uuid.UUID, FeaturePlugin] = {}

    def referenced_features(self) -> dict[str, uuid.UUID]:
        return {alias: uuid.UUID(spec.feature_id) for alias, spec in (self.params.features or {}).items()  # type: ignore[attr-defined]
                if isinstance(spec, FeatureRef)}

    def with_references(self, plugins: Mapping[uuid.UUID, FeaturePlugin]) -> Self:
        """A copy reading each referenced definition through its plugin; 422 when ``column``
        is not one of that definition's output columns."""
        bound = type(self)(self.params)
        bound._references = dict(plugins)
        for alias, spec in (self.params.features or {}).items():  # type: ignore[attr-defined]
            if isinstance(spec, FeatureRef):
                try:
                    _input_column(alias, f"feature {spec.feature_id}", plugins[uuid.UUID(spec.feature_id)], spec.column)
                except ValueError as exc:
                    raise InvalidInput(str(exc), field=f"parameters.features.{alias}.column") from None
        return bound

    @cached_property
    def _inputs(self) -> dict[str, tuple[FeaturePlugin, str]]:
        inputs = {}
        for alias, spec in (self.params.features or {}).items():  # type: ignore[attr-defined]
            if isinstance(spec, FeatureInput):
                inputs[alias] = _input_plugin(alias, spec)
                continue
            plugin = self._references.get(uuid.UUID(spec.feature_id))
            if plugin is None:
                raise RuntimeError(f"features[{alias!r}] names feature {spec.feature_id}, not bound: resolve the "
                                   "definition with features.definitions.resolve_definition")
            inputs[alias] = (plugin, _input_column(alias, spec.feature_id, plugin, spec.column))
        return inputs

    @cached_property
    def formulas(self) -> dict[str, Expr]:
        """Parsed without the inputs' plugins (their aliases suffice), so a definition's
        columns are known before its references are bound."""
        names = BAR_FIELDS | set(self.params.macro or {}) | set(self.params.fundamentals or {}) | set(self.params.features or {})  # type: ignore[attr-defined]
        return {name: parse(text, fields=names) for name, text in self.params.expressions.items()}  # type: ignore[attr-defined]

    @property
    def output_columns(self) -> list[str]:
        return list(self.formulas)

    @property
    def lookback(self) -> int:
        inputs = {alias: plugin.lookback for alias, (plugin, _) in self._inputs.items()}
        return max(warmup(expr, inputs) for expr in self.formulas.values())

    @property
    def recursive(self) -> bool:  # type: ignore[override]
        return any(is_recursive(expr) for expr in self.formulas.values())

    def bar_fields(self) -> tuple[str, ...]:
        used = set().union(*(fields_of(expr) for expr in self.formulas.values()))
        return tuple(c for c in BAR_COLUMNS if c in used)

    def macro_series(self) -> list[str]:
        return sorted(set((self.params.macro or {}).values()))  # type: ignore[attr-defined]

    def fundamental_fields(self) -> list[str]:
        return sorted(set((self.params.fundamentals or {}).values()))  # type: ignore[attr-defined]

    def input_features(self) -> dict[str, FeaturePlugin]:
        return {alias: plugin for alias, (plugin, _) in self._inputs.items()}

    def compute(self, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        return self.compute_batch([inputs])[0]

    def compute_batch(self, batch: Sequence[FeatureInputs]) -> list[dict[str, np.ndarray]]:
        """Every symbol of the batch in one vectorised evaluation (each common subexpression once)."""
        fields = {f: [one.bars.column(f) for one in batch] for f in self.bar_fields()}
        for alias, series in (self.params.macro or {}).items():  # type: ignore[attr-defined]
            fields[alias] = [one.macro[series].as_of(one.bars.timestamps) for one in batch]
        for alias, name in (self.params.fundamentals or {}).items():  # type: ignore[attr-defined]
            fields[alias] = [one.fundamentals[name].as_of(one.bars.timestamps) for one in batch]
        for alias, (_, column) in self._inputs.items():
            fields[alias] = [np.asarray(one.features[alias][column], dtype=np.float64) for one in batch]
        data = PanelData.from_arrays([str(i) for i in range(len(batch))], [one.bars.timestamps for one in batch], fields)
        values = evaluate(self.formulas, data)
        return [
            {name: values[name][data.offsets[i]:data.offsets[i + 1]] for name in self.formulas}
            for i in range(len(batch))
        ]
