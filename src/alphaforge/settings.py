"""The one settings module: every knob is an ``ALPHAFORGE_*`` environment variable.

With nothing set, alphaforge runs embedded: a SQLite file and a local object-store folder
under ``data_dir``. Production points ``database_url`` at PostgreSQL and
``object_store_url`` at ``s3://bucket/prefix`` (with an endpoint for MinIO).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Hosts every deployment answers to; ``allowed_hosts`` adds the deployment's own names.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALPHAFORGE_", env_file=".env", extra="ignore")

    app_name: str = "alphaforge"
    env: str = "local"

    data_dir: Path = Path("data")
    database_url: str | None = None
    object_store_url: str | None = None

    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # S3 timeouts: an attempt fails when the server does not connect within the first or
    # stops sending for the second. One operation (retries included) ends after both
    # together: a server that hangs costs a request that long (15 s), whatever the retries.
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_read_timeout_s: float = Field(default=10.0, gt=0)
    #: Attempts per S3 call (1 = no retry): retries cover dropped connections and throttling.
    s3_max_attempts: int = Field(default=2, ge=1, le=10)

    # External market-data service; when unset, bars come from the local bar store.
    market_data_url: str | None = None
    market_data_api_key: SecretStr | None = None
    market_data_timeout_s: float = 10.0

    # MLflow: unset -> a SQLite store (and artifact folder) in data_dir; production: an
    # MLflow server (http://...) or a database URI.
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "alphaforge"
    # Artifact root of the experiment alphaforge creates (e.g. s3://bucket/mlflow); unset:
    # the server's default for an http(s) tracking URI, else a folder in data_dir.
    mlflow_artifact_root: str | None = None

    # Optuna's study storage: unset -> an optuna.db file in data_dir (embedded) or the
    # schema "optuna" of the PostgreSQL database (Optuna keeps its own alembic_version).
    optuna_storage_url: str | None = None

    # Asynchronous tasks: unset broker -> an in-service pool of worker processes; a Redis
    # URL (redis://host:6379/0) -> Celery, with workers started by `alphaforge worker`.
    celery_broker_url: str | None = None
    celery_queue: str = "alphaforge"
    task_workers: int = 2
    #: A STARTED task whose worker has not reported for this long is marked FAILURE.
    task_stale_after_s: float = 60.0
    task_heartbeat_s: float = 5.0

    # News sentiment: a local FinBERT folder (config, weights, tokenizer, as saved by
    # transformers' save_pretrained) enables the "finbert" scorer; nothing is downloaded.
    finbert_dir: Path | None = None

    # -- access and bounds (a shared service) ---------------------------------------
    #: The bootstrap admin key. Unset: on first start the service creates one, prints it
    #: once and writes it to <data_dir>/admin-api-key (mode 0600).
    admin_api_key: SecretStr | None = None
    #: Host names (besides localhost, 127.0.0.1, [::1]) the API answers to; "*" for any
    #: (only behind a proxy that checks Host itself). Comma-separated in the environment.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    #: Origins allowed to call the API from a browser (CORS); empty: CORS off.
    cors_origins: Annotated[list[str], NoDecode] = []
    #: Serve /docs, /redoc and /openapi.json.
    docs_enabled: bool = True
    #: /health/ready answers only with a key (any role); /health is always open.
    ready_requires_key: bool = False
    #: Request bodies over these sizes are refused (413) before they are read.
    max_upload_mb: float = 100.0
    max_json_mb: float = 10.0
    #: Rows a predict answer may hold (a universe over years is millions: 422 above it).
    max_predict_rows: int = Field(200_000, ge=1)
    #: Wall-clock limit of one task run (a request may ask for less), and the resident
    #: memory a worker process may use (0: no limit); a task over either ends FAILURE.
    task_time_limit_s: float = 6 * 3600.0
    task_memory_limit_mb: float = 4096.0
    #: Tasks one batch request may create, and unfinished tasks one key may have queued.
    max_batch_tasks: int = 1000
    max_queued_tasks_per_key: int = 200

    load_sample_data: bool = True
    migrate_on_start: bool = True

    host: str = "127.0.0.1"
    port: int = 8000

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def hosts(self) -> frozenset[str]:
        """Every Host name the API answers to (lower case, no port)."""
        return frozenset(h.lower() for h in (*LOCAL_HOSTS, *self.allowed_hosts))

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'alphaforge.db').resolve()}"

    @cached_property
    def resolved_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @cached_property
    def resolved_optuna_storage_url(self) -> str:
        """Where tuning studies live; every process with these settings shares them."""
        if self.optuna_storage_url:
            return self.optuna_storage_url
        database = self.resolved_database_url
        if database.startswith("sqlite"):
            return f"sqlite:///{(self.data_dir / 'optuna.db').resolve()}"
        from sqlalchemy.engine import make_url

        url = make_url(database)
        options = " ".join(filter(None, [str(url.query.get("options", "")), "-csearch_path=optuna"]))
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)

    @cached_property
    def mlflow_artifact_location(self) -> str | None:
        """Where an experiment created by alphaforge keeps run artifacts (None: the server's default)."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        if self.mlflow_tracking_uri and self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.data_dir / "mlartifacts").resolve().as_uri()

    @cached_property
    def resolved_object_store_url(self) -> str:
        if self.object_store_url:
            return self.object_store_url.rstrip("/")
        return (self.data_dir / "objects").resolve().as_uri()
