"""Shared fixtures: the two backends every API test runs on.

- embedded: SQLite file + local object-store folder (always runs);
- production: a PostgreSQL database created for this run + an S3 server over HTTP on
  127.0.0.1 (moto's server: no real S3/MinIO can run here). Skipped with a message when
  PostgreSQL or moto is missing, mandatory when CI=true.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alphaforge.api.app import create_app
from alphaforge.ingestion.bundled import load_bundled_macro
from alphaforge.marketdata.macro import MacroStore
from alphaforge.settings import Settings
from alphaforge.storage.db import Database
from alphaforge.storage.migrate import upgrade
from alphaforge.storage.parquet import from_parquet_bytes
from support import ACCESS, ADMIN_HEADERS, ADMIN_KEY, free_port, require  # noqa: F401 - re-exported

POSTGRES_ADMIN_URL = os.environ.get(
    "ALPHAFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
S3_CREDENTIALS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}


# -- template databases: migrated once per test process, copied for every app -------------
Template = Literal["app", "mlflow"]


def _migrate_app(url: str) -> None:
    """The newest schema, and the bundled macro series every start would load (~1.3-1.6 s
    per app otherwise; the sample bars stay per app: their rows name objects in its store)."""
    upgrade(url)  # alembic's engine uses NullPool: no connection outlives it
    db = Database(url)
    try:
        assert load_bundled_macro(MacroStore(db))  # the load path runs, once per backend and run
    finally:
        db.dispose()


def _create_mlflow_store(url: str) -> None:
    """MLflow creates its tables (its own migrations) when a store first opens a database."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory(prefix="mlflow-template-") as artifacts:  # unused by alphaforge
        with warnings.catch_warnings():  # MLflow's own mappers use a loader SQLAlchemy deprecates
            warnings.simplefilter("ignore")
            store = SqlAlchemyStore(url, Path(artifacts).as_uri())
        store.engine.dispose()  # a template must have no open connection when it is copied


TEMPLATE_BUILDERS: dict[str, Callable[[str], None]] = {"app": _migrate_app, "mlflow": _create_mlflow_store}
SQLITE_TEMPLATE_FILES: dict[Template, str] = {"app": "alphaforge.db", "mlflow": "mlflow.db"}


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the embedded default's two SQLite files, already at the newest schema."""
    folder = tmp_path_factory.mktemp("sqlite-templates")
    for kind, filename in SQLITE_TEMPLATE_FILES.items():
        TEMPLATE_BUILDERS[kind](f"sqlite:///{folder / filename}")
    return folder


def seed_data_dir(data_dir: Path, templates: Path, overrides: dict[str, object]) -> None:
    """Copy the template files into a new data_dir, except those whose URL a test sets itself."""
    settings_field = {"app": "database_url", "mlflow": "mlflow_tracking_uri"}
    for kind, filename in SQLITE_TEMPLATE_FILES.items():
        if overrides.get(settings_field[kind]) is None and not (data_dir / filename).exists():
            shutil.copyfile(templates / filename, data_dir / filename)


# -- PostgreSQL ---------------------------------------------------------------------------
class PostgresServer:
    """Creates databases of our own for this test run and drops them at the end.

    ``new_database(template=...)`` copies a database migrated once per session
    (``CREATE DATABASE ... TEMPLATE``): a copy takes ~0.07 s where migrating the app's
    schema takes ~0.3 s and creating MLflow's ~1.8 s, for every app a test starts."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.created: list[str] = []
        self.templates: dict[str, str] = {}

    def new_database(self, template: Template | None = None) -> str:
        name = f"alphaforge_test_{uuid.uuid4().hex[:12]}"
        source = f' TEMPLATE "{self._template(template)}"' if template else ""
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
        self.created.append(name)
        return self.url(name)

    def url(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _template(self, kind: Template) -> str:
        """The template of that kind, created and brought to the newest schema on first use."""
        if kind not in self.templates:
            url = self.new_database()
            TEMPLATE_BUILDERS[kind](url)
            self.templates[kind] = make_url(url).database  # type: ignore[assignment]
        return self.templates[kind]

    def drop_all(self) -> None:
        """Four at a time: a drop is ~0.1 s of file removal, and a test process creates hundreds."""

        def drop(name: str) -> None:
            with self.engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(drop, self.created))
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(POSTGRES_ADMIN_URL)
        with server.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        require(
            "PostgreSQL",
            str(exc).splitlines()[0],
            "start PostgreSQL on 127.0.0.1:5432 or set ALPHAFORGE_TEST_POSTGRES_URL",
        )
    yield server
    server.drop_all()


# -- S3 (moto's server over HTTP) ------------------------------------------------------
@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        require("moto S3 server", str(exc), "install the test extras: pip install -e '.[dev]'")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


# -- settings per backend -------------------------------------------------------------
SettingsFactory = Callable[..., Settings]


def _embedded_settings(tmp: Path, templates: Path, **overrides: object) -> Settings:
    seed_data_dir(tmp, templates, overrides)
    return Settings(data_dir=tmp, **{**ACCESS, **overrides})  # type: ignore[arg-type]


@pytest.fixture(params=["embedded", "production"], scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def make_settings(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SettingsFactory:
    """A factory of fresh, isolated settings (own database, own bucket) for the backend.

    The production services are requested here, before any app that uses them starts, so
    they are torn down after those apps (pytest ends fixtures in reverse order of setup):
    no running service ever sees its database dropped under it."""
    if backend == "production":
        pg: PostgresServer = request.getfixturevalue("postgres")
        endpoint: str = request.getfixturevalue("s3_endpoint")
    else:
        templates: Path = request.getfixturevalue("sqlite_templates")

    def factory(**overrides: object) -> Settings:
        tmp = tmp_path_factory.mktemp(backend)
        if backend == "embedded":
            return _embedded_settings(tmp, templates, **overrides)
        values: dict[str, object] = {
            "data_dir": tmp,
            "database_url": pg.new_database(template="app"),
            "object_store_url": f"s3://alphaforge-{uuid.uuid4().hex[:12]}/objects",
            "s3_endpoint_url": endpoint,
            # MLflow's production store: a PostgreSQL database of its own (runs in a file folder).
            "mlflow_tracking_uri": pg.new_database(template="mlflow"),
            "mlflow_artifact_root": (tmp / "mlartifacts").as_uri(),
            **S3_CREDENTIALS,
            **ACCESS,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return factory


@pytest.fixture(scope="module")
def client(make_settings: SettingsFactory) -> Iterator[TestClient]:
    """One app per test module and backend, called with the admin key; tests must not
    assume they are alone in it."""
    with app_client(make_settings()) as test_client:
        yield test_client


@pytest.fixture
def fresh_client(make_settings: SettingsFactory) -> Iterator[TestClient]:
    """An app with its own empty database and store, for tests that change shared data."""
    with app_client(make_settings()) as test_client:
        yield test_client


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess (a server, a worker) needs to see the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(map(str, value))
        env[f"ALPHAFORGE_{name.upper()}"] = str(value)
    return env


# -- API helpers ------------------------------------------------------------------------
def app_client(settings: Settings) -> TestClient:
    """A TestClient over a new app with these settings, calling with the admin key."""
    return TestClient(create_app(settings), headers=ADMIN_HEADERS)


def bearer(key: str) -> dict[str, str]:
    """Headers that send ``key`` (instead of the admin key the test clients send)."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keys(client: TestClient) -> dict[str, str]:
    """A key of each role for the module's app, the read and research ones created through the API."""
    made = {}
    for role in ("read", "research"):
        response = client.post("/api/v1/keys", json={"name": f"{role} tester", "role": role})
        assert response.status_code == 201, response.text
        made[role] = response.json()["key"]
    made["admin"] = ADMIN_KEY
    return made


CreateFeature = Callable[..., dict]


@pytest.fixture
def create_feature() -> CreateFeature:
    """POST a feature definition and return its JSON (asserting the 201)."""

    def create(client: TestClient, plugin_key: str, parameters: dict | None = None, **fields: object) -> dict:
        body = {
            "name": fields.pop("name", plugin_key),
            "type": fields.pop("type", plugin_key.split(".")[0]),
            "plugin_key": plugin_key,
            "parameters": parameters or {},
            **fields,
        }
        response = client.post("/api/v1/features", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create


def post_features(client: TestClient, specs: list[tuple[str, dict]]) -> list[str]:
    """Create one feature definition per (plugin_key, parameters); their ids, in order."""
    ids = []
    for key, params in specs:
        body = {"name": key, "type": key.split(".")[0], "plugin_key": key, "parameters": params}
        response = client.post("/api/v1/features", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def stored_training_frame(client: TestClient, model_id: str, start: str, end: str, horizon: int) -> tuple[pd.DataFrame, pd.Series]:
    """A trained model's features as stored (the dataset versions its lineage names), side by
    side, and the target recomputed from the bars: its training rows rebuilt without the trainer."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    lineage = client.get(f"/api/v1/models/{model_id}").json()["lineage"]
    frames = []
    for feature in lineage["features"]:
        versions = client.get(f"/api/v1/features/{feature['feature_id']}/versions", params={"symbol": "GSPC"}).json()
        stored = next(v for v in versions if v["version_hash"] == feature["dataset_version_hash"])
        frames.append(from_parquet_bytes(ctx.objects.get(ctx.objects.key_of(stored["storage_uri"]))))
    X = pd.concat(frames, axis=1)
    bars = client.get("/api/v1/market-data/GSPC/bars", params={"start": start, "end": end}).json()["bars"]
    closes = pd.Series({pd.Timestamp(b["timestamp"]): b["close"] for b in bars})
    return X, (closes.shift(-horizon) / closes - 1.0).reindex(X.index)


@pytest.fixture(scope="session")
def closes() -> pd.DataFrame:
    """skfolio's own copy of the SP20 closes (UTC): an independent read of the data the
    service bundles, for expected values."""
    from skfolio.datasets import load_sp500_dataset

    frame = load_sp500_dataset()
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("UTC")
    return frame
