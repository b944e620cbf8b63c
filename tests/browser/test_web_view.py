"""The web view (/ui) and the offline /docs in real headless Chromium, on a real server.

One server and one browser for the module. The server is seeded over HTTP through
``alphaforge.client``, as a researcher would: an RSI generated for GSPC, a trained ridge
model, a small tuning study and a small AutoML run.
The browser reaches 127.0.0.1 only: every other host is aborted and recorded, so a page that
needs the internet (a CDN script, a web font) fails here as it would on an offline network.

Debian's Chromium is driven by Playwright (never ``playwright install``): the binary is
ALPHAFORGE_CHROMIUM, else /usr/lib/chromium/chromium. Without it, or without playwright,
the tests skip with how to enable them; with CI=true they fail instead. Screenshots go to
pytest's tmp dir and, when ALPHAFORGE_SCREENSHOTS names a folder, there too; their paths are
printed and recorded as ``screenshot`` properties (JUnit XML).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from alphaforge.client import Client, dataset_spec
from alphaforge.settings import Settings
from conftest import seed_data_dir
from support import ACCESS, ADMIN_KEY, LiveApi, require, serve

CHROMIUM = os.environ.get("ALPHAFORGE_CHROMIUM", "/usr/lib/chromium/chromium")
LOCAL = "127.0.0.1"
#: A page's own work (API calls, plotly drawing) must be done by then; seeding is not timed.
PAGE_TIMEOUT_MS = 60_000
GENERATED = ("2010-01-01", "2019-01-01")
CV = {"method": "expanding", "n_splits": 3}


def SPEC(feature_id: str) -> dict[str, Any]:  # noqa: N802 - a constant of the module, given the feature
    """What the model, the study and the AutoML run are trained on (narrower than GENERATED)."""
    return dataset_spec([feature_id], "2012-01-01", "2019-01-01", symbol="GSPC", target_horizon=5)


# -- the seeded server --------------------------------------------------------------------
@dataclass
class Seeded:
    api: LiveApi
    client: Client
    read_key: str
    feature: dict[str, Any]
    dataset: dict[str, Any]
    model: dict[str, Any]
    study_id: int
    study_name: str
    automl_task_id: str


@pytest.fixture(scope="module")
def seeded(sqlite_templates: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A served app seeded as a researcher would, through ``alphaforge.client`` (the read
    key through the keys route: the client has no admin calls)."""
    data_dir = tmp_path_factory.mktemp("web-view")
    seed_data_dir(data_dir, sqlite_templates, {})
    with serve(Settings(data_dir=data_dir, **ACCESS)) as api, Client(api.base_url, ADMIN_KEY) as af:  # type: ignore[arg-type]
        created = api.call("POST", "/api/v1/keys", json={"name": "web view", "role": "read"})
        assert created.status_code == 201, created.text
        feature = af.features.create("14-period RSI", "technical.rsi", {"period": 14})
        frame = af.features.generate(feature["id"], "GSPC", *GENERATED)
        dataset = af.features.versions(feature["id"], "GSPC")[-1]
        assert len(frame) == dataset["row_count"]
        model = af.models.create("GSPC ridge on RSI", "ridge", {"alpha": 1.0})
        af.models.train(model["id"], SPEC(feature["id"]), CV)
        tuned = af.models.tune(plugin_key="ml.ridge", dataset=SPEC(feature["id"]), cv=CV, n_trials=6, pruner="none",
                               param_space={"alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True}})
        run = af.models.automl_async(dataset=SPEC(feature["id"]), cv=CV, candidates={
            "ml.ridge": {"alpha": 1.0}, "ml.lightgbm": {"n_estimators": 20, "num_leaves": 7}})
        run.wait(progress=False)
        yield Seeded(api, af, created.json()["key"], feature, dataset, af.models.get(model["id"]),
                     tuned["study_id"], tuned["study_name"], run.id)


# -- the browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require("playwright", str(exc), "pip install playwright (never `playwright install`: the tests use the system Chromium)")
    if not Path(CHROMIUM).is_file():
        require("Chromium", f"no browser at {CHROMIUM}", "apt-get install chromium, or set ALPHAFORGE_CHROMIUM to a Chromium binary")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@dataclass
class Tab:
    """A page on its own browser context, with what it logged and what it tried to fetch."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    left_the_machine: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser: Any, seeded: Seeded) -> Iterator[Tab]:
    context = browser.new_context(base_url=seeded.api.base_url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = Tab(page=context.new_page())

    def offline(route: Any) -> None:
        if urlsplit(route.request.url).hostname == LOCAL:
            route.continue_()
        else:
            opened.left_the_machine.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    opened.page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
    opened.page.on("pageerror", lambda e: opened.console_errors.append(f"uncaught: {e}"))
    opened.page.on("request", lambda r: opened.requests.append(r.url))
    yield opened
    context.close()
    assert opened.left_the_machine == [], "requests beyond 127.0.0.1"
    assert opened.console_errors == [], "console errors"


def sign_in(tab: Tab, key: str, hash_: str) -> None:
    """Open the web view at ``hash_`` and enter ``key`` as a user does."""
    tab.page.goto(f"/ui/{hash_}")
    tab.page.fill("#api-key", key)
    tab.page.click("#key-form button[type=submit]")
    tab.page.wait_for_selector(f'#view[data-page="{hash_}"]')


def plotted(tab: Tab, chart_id: str) -> list[dict[str, Any]]:
    """The traces plotly drew in ``#chart_id`` (after its SVG exists): name and point count."""
    tab.page.wait_for_selector(f"#{chart_id} .main-svg")
    return tab.page.eval_on_selector(
        f"#{chart_id}",
        "el => el.data.map(t => ({name: t.name, n: (t.x || []).filter(v => v !== null).length}))",
    )


def view_text(tab: Tab) -> str:
    """The page's text as written (innerText would follow the CSS upper-casing of headers)."""
    return tab.page.text_content("#view") or ""


def screenshot(tab: Tab, name: str, tmp_path: Path, record_property: Any, full_page: bool = True) -> Path:
    path = tmp_path / f"{name}.png"
    tab.page.screenshot(path=str(path), full_page=full_page)
    folder = os.environ.get("ALPHAFORGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / path.name)
    record_property("screenshot", str(path))
    print(f"screenshot: {path}")
    return path


# -- the pages --------------------------------------------------------------------------------
def test_docs_render_the_operations_offline(tab: Tab, tmp_path: Path, record_property: Any) -> None:
    tab.page.goto("/docs")
    operation = tab.page.locator(".opblock-summary-path", has_text="/api/v1/features").first
    operation.wait_for(state="visible")
    assert tab.page.locator(".opblock").count() > 50
    assert tab.page.locator("button.authorize").is_visible()  # the key is entered with Authorize
    screenshot(tab, "docs", tmp_path, record_property, full_page=False)  # the whole page is ~10,000 px tall
    tab.page.goto("/redoc")
    tab.page.get_by_role("heading", name="alphaforge").first.wait_for(state="visible")
    tab.page.get_by_text("/api/v1/features").first.wait_for(state="attached")
    assert any("/static/docs/redoc.standalone.js" in url for url in tab.requests)
    # ReDoc's footer logo (cdn.redoc.ly) is refused by the page's policy: no request leaves.
    assert all("cdn.redoc.ly" in e and "Content Security Policy" in e for e in tab.console_errors)
    tab.console_errors.clear()


def test_without_a_key_the_view_asks_for_one_and_a_wrong_key_is_refused(tab: Tab) -> None:
    tab.page.goto("/ui/#/models")
    tab.page.wait_for_selector("#view .notice")
    assert "Enter an API key" in view_text(tab)
    tab.page.fill("#api-key", "af_not_a_key")
    tab.page.click("#key-form button[type=submit]")
    tab.page.wait_for_selector("#view .error")
    assert "unknown or revoked" in view_text(tab)
    # Chromium logs the refused call as a failed resource; nothing else may be logged.
    assert tab.console_errors and all("401" in e for e in tab.console_errors), tab.console_errors
    tab.console_errors.clear()


def test_feature_page_lists_its_dataset_and_charts_it(
    tab: Tab, seeded: Seeded, tmp_path: Path, record_property: Any
) -> None:
    sign_in(tab, seeded.read_key, "#/features")
    tab.page.get_by_role("link", name="14-period RSI").click()
    tab.page.wait_for_selector(f'#view[data-page="#/features/{seeded.feature["id"]}"]')
    # Two datasets: the one generated, and the narrower one training computed; the newest is charted.
    rows = tab.page.locator("#view tbody tr")
    assert rows.count() == 2
    tab.page.wait_for_selector("#dataset-chart .main-svg")
    generated = rows.filter(has_text=seeded.dataset["version_hash"][:12])
    generated.click()
    tab.page.wait_for_selector("#view tbody tr.selected", state="attached")
    tab.page.locator("#dataset-chart .gtitle", has_text=f"{seeded.dataset['row_count']:,} rows").wait_for()
    assert plotted(tab, "dataset-chart") == [{"name": "rsi", "n": seeded.dataset["row_count"]}]
    assert seeded.dataset["row_count"] > 2000 and "selected" in (generated.get_attribute("class") or "")
    text = view_text(tab)
    assert "technical.rsi" in text and "GSPC" in text and "2010-01-01" in text
    screenshot(tab, "feature", tmp_path, record_property)


def test_model_page_shows_folds_baseline_forecasts_and_its_mlflow_run(
    tab: Tab, seeded: Seeded, tmp_path: Path, record_property: Any
) -> None:
    model = seeded.model
    sign_in(tab, seeded.read_key, f"#/models/{model['id']}")
    timeline = plotted(tab, "fold-timeline")
    assert [t["name"] for t in timeline] == ["train", "test"]
    assert [t["n"] for t in timeline] == [2 * CV["n_splits"]] * 2  # a start and an end per fold
    forecasts = plotted(tab, "forecast-chart")
    oof = seeded.api.call("GET", f"/api/v1/models/{model['id']}/out-of-fold").json()
    assert [t["n"] for t in forecasts] == [len(oof), len(oof)]
    text = view_text(tab)
    assert "GSPC ridge on RSI" in text and "Naive baseline" in text and "mean_mse" in text
    assert tab.page.locator("#view table").first.locator("tbody tr").count() == CV["n_splits"]
    href = tab.page.get_attribute("#mlflow-run", "href")
    assert href is not None and href.endswith(f"/#/runs/{model['mlflow_run_id']}")
    screenshot(tab, "model", tmp_path, record_property)


def test_study_page_charts_scores_by_trial_and_parameter_importance(
    tab: Tab, seeded: Seeded, tmp_path: Path, record_property: Any
) -> None:
    sign_in(tab, seeded.read_key, f"#/studies/{seeded.study_id}")
    scores = {t["name"]: t["n"] for t in plotted(tab, "study-scores")}
    assert scores["complete"] == 6 and scores["best so far"] == 6
    assert [t["n"] for t in plotted(tab, "study-importance")] == [1]  # one sampled parameter: alpha
    assert seeded.study_name in view_text(tab) and "alpha" in tab.page.inner_text("#study-importance")
    # optuna-dashboard addresses a study by its storage id, the id the studies routes use
    href = tab.page.get_attribute("#optuna-dashboard", "href")
    assert href == f"http://127.0.0.1:8080/dashboard/studies/{seeded.study_id}"
    screenshot(tab, "study", tmp_path, record_property)


def test_automl_page_shows_the_leaderboard_and_the_overfitting_figures(
    tab: Tab, seeded: Seeded, tmp_path: Path, record_property: Any
) -> None:
    sign_in(tab, seeded.read_key, f"#/automl/{seeded.automl_task_id}")
    bars = plotted(tab, "automl-scores")
    assert bars[0]["n"] == 2
    text = view_text(tab)
    assert "ml.ridge" in text and "ml.lightgbm" in text
    assert "deflated Sharpe (DSR)" in text and "probability of backtest overfitting" in text
    result = seeded.api.call("GET", f"/api/v1/tasks/{seeded.automl_task_id}").json()["result"]
    dsr = result["overfitting"]["deflated_sharpe"]
    shown = tab.page.locator(".figure", has_text="deflated Sharpe (DSR)").locator(".value").text_content()
    assert dsr is not None and float(shown or "nan") == pytest.approx(dsr, rel=1e-3)
    screenshot(tab, "automl", tmp_path, record_property)


def test_tasks_page_follows_a_task_live(tab: Tab, seeded: Seeded, tmp_path: Path, record_property: Any) -> None:
    sign_in(tab, seeded.read_key, "#/tasks")
    assert "automl" in view_text(tab)
    # Submitted after the page loaded: only the page's own polling can show it, then its end.
    task = seeded.client.models.train_async(seeded.model["id"], SPEC(seeded.feature["id"]), CV)
    row = tab.page.locator("#view tr", has_text=task.id[:8])
    row.locator(".status-SUCCESS").wait_for(state="visible", timeout=120_000)
    assert "100%" in row.inner_text()
    screenshot(tab, "tasks", tmp_path, record_property)


def test_mlflow_server_lists_the_experiment_alphaforge_logs_to(seeded: Seeded, tmp_path: Path) -> None:
    """What the README tells a user to run: ``mlflow server`` on the store alphaforge uses."""
    import subprocess
    import sys

    import httpx

    from support import free_port

    store = seeded.api.ctx.settings.resolved_mlflow_tracking_uri
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", store, "--host", LOCAL, "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "mlflow.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            try:
                found = httpx.get(f"http://{LOCAL}:{port}/api/2.0/mlflow/experiments/search",
                                  params={"max_results": 100}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mlflow server did not answer"
                time.sleep(0.5)
        assert found.status_code == 200, found.text
        names = [e["name"] for e in found.json()["experiments"]]
        assert seeded.api.ctx.settings.mlflow_experiment in names
        runs = httpx.post(f"http://{LOCAL}:{port}/api/2.0/mlflow/runs/search", json={
            "experiment_ids": [e["experiment_id"] for e in found.json()["experiments"]], "max_results": 1000,
        }, timeout=30).json()["runs"]
        assert seeded.model["mlflow_run_id"] in [r["info"]["run_id"] for r in runs]
    finally:
        server.terminate()
        server.wait(timeout=30)
