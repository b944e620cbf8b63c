// alphaforge web view: a read-only single page over /api/v1.
// Every datum is fetched with the key the user entered (sessionStorage, this tab only), so
// every call passes the API's own role check. Nothing is written: only GET requests.
// The DOM is built with textContent (never innerHTML) so no stored text can run as script.
"use strict";

const API = "/api/v1";
const KEY_STORE = "alphaforge.apiKey";
const MLFLOW_STORE = "alphaforge.mlflowUi";
const DASHBOARD_STORE = "alphaforge.optunaDashboard";
const POLL_MS = 2000;
const view = document.getElementById("view");
let pollTimer = null;
let renderSeq = 0;

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

// -- plumbing --------------------------------------------------------------------------
function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

async function api(path) {
  const response = await fetch(API + path, { headers: { Authorization: `Bearer ${apiKey()}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(value, digits = 4) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toPrecision(digits);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function day(iso) { return iso ? String(iso).slice(0, 10) : "—"; }
function when(iso) { return iso ? String(iso).replace("T", " ").slice(0, 19) : "—"; }

function table(columns, rows, onRowClick, selected) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row, i) => h(
    "tr",
    { class: [onRowClick ? "clickable" : "", selected === i ? "selected" : ""].join(" ").trim() || null,
      onclick: onRowClick ? () => onRowClick(row, i) : null },
    columns.map((c) => {
      const value = c.value(row);
      return h("td", { class: c.num ? "num" : null }, value instanceof Node ? value : fmt(value, c.digits));
    }),
  ));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

function figures(items) {
  return h("div", { class: "figures" }, items.map(([label, value, title]) => h(
    "div", { class: "figure", title: title || null },
    h("div", { class: "value" }, fmt(value)), h("div", { class: "label" }, label),
  )));
}

function chart(id, traces, layout) {
  // A chart given its own height is as tall as that; the others take the default minimum.
  const div = h("div", { class: layout.height ? "chart fit" : "chart", id });
  requestAnimationFrame(() => Plotly.newPlot(div, traces, {
    margin: { l: 60, r: 20, t: 36, b: 44 }, font: { size: 12 }, legend: { orientation: "h", y: -0.18 },
    ...layout,
  }, { responsive: true, displaylogo: false }));
  return div;
}

function link(href, text) { return h("a", { href }, text); }

function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }

function showError(error) {
  if (error instanceof ApiError && error.status === 401) {
    return h("p", { class: "error" }, "This page needs an API key: enter one above (read role is enough). ", error.message);
  }
  return h("p", { class: "error" }, error.message || String(error));
}

// -- pages -----------------------------------------------------------------------------
function listPage(title, columns, rows, empty) {
  return [h("h1", {}, title), rows.length ? table(columns, rows) : h("p", { class: "muted" }, empty)];
}

async function featuresPage() {
  return listPage("Feature definitions", [
    { label: "Name", value: (f) => link(`#/features/${f.id}`, f.name) },
    { label: "Plugin", value: (f) => f.plugin_key },
    { label: "Parameters", value: (f) => JSON.stringify(f.parameters) },
    { label: "Version", value: (f) => f.version, num: true },
    { label: "Created", value: (f) => when(f.created_at) },
  ], await api("/features?limit=1000"), "No feature definitions yet.");
}

async function featurePage(id) {
  const [feature, datasets] = await Promise.all([api(`/features/${id}`), api(`/features/${id}/datasets?limit=1000`)]);
  const chartBox = h("div", { class: "card" });
  const datasetTable = h("div");
  const show = async (dataset, index) => {
    datasetTable.replaceChildren(datasetsTable(datasets, show, index));
    chartBox.replaceChildren(h("p", { class: "muted" }, "Loading ", dataset.symbol, "…"));
    const rows = await api(`/features/${id}/datasets/${dataset.id}/data`);
    const x = rows.map((r) => r.timestamp);
    const traces = dataset.columns.map((column) => ({
      type: "scatter", mode: "lines", name: column, x, y: rows.map((r) => r[column]),
    }));
    chartBox.replaceChildren(chart("dataset-chart", traces, {
      title: { text: `${feature.name} · ${dataset.symbol} ${dataset.timeframe} (${rows.length.toLocaleString("en-US")} rows)` },
      xaxis: { type: "date" },
    }));
  };
  const page = [
    h("h1", {}, feature.name),
    h("div", { class: "card" },
      h("div", {}, h("b", {}, "Plugin "), h("code", {}, feature.plugin_key), "  ·  version ", feature.version),
      h("div", {}, h("b", {}, "Parameters "), h("code", {}, JSON.stringify(feature.parameters))),
      feature.description ? h("div", { class: "muted" }, feature.description) : null),
    h("h2", {}, `Datasets (${datasets.length})`),
    datasetTable,
    chartBox,
  ];
  if (datasets.length) await show(datasets[datasets.length - 1], datasets.length - 1);
  else {
    datasetTable.replaceChildren(h("p", { class: "muted" }, "No dataset generated yet (POST /api/v1/features/{id}/generate)."));
    chartBox.remove();
  }
  return page;
}

function datasetsTable(datasets, onClick, selected) {
  return table([
    { label: "Symbol", value: (d) => d.symbol },
    { label: "Timeframe", value: (d) => d.timeframe },
    { label: "From", value: (d) => day(d.start_date) },
    { label: "To (excl.)", value: (d) => day(d.end_date) },
    { label: "Rows", value: (d) => d.row_count, num: true },
    { label: "Columns", value: (d) => d.columns.join(", ") },
    { label: "Version hash", value: (d) => h("code", {}, d.version_hash.slice(0, 12)) },
    { label: "Created", value: (d) => when(d.created_at) },
  ], datasets, onClick, selected);
}

async function modelsPage() {
  return listPage("Models", [
    { label: "Name", value: (m) => link(`#/models/${m.id}`, m.name) },
    { label: "Plugin", value: (m) => m.plugin_key },
    { label: "Version", value: (m) => m.version, num: true },
    { label: "Trained", value: (m) => when(m.trained_at) },
    { label: "CV mean MSE", value: (m) => m.metrics.mean_mse, num: true },
    { label: "CV mean IC", value: (m) => m.metrics.mean_ic, num: true },
  ], await api("/models?limit=1000"), "No models yet.");
}

/** A link into another tool's own UI (MLflow's, optuna-dashboard) at an address the user can
 * change, kept in this browser: those tools run apart from alphaforge, wherever one starts them. */
function toolLink(id, text, store, fallback, path, what) {
  const base = (localStorage.getItem(store) || fallback).replace(/\/+$/, "");
  const anchor = h("a", { href: `${base}${path}`, target: "_blank", rel: "noopener", id }, text);
  const input = h("input", { value: base, size: 28, "aria-label": `${what} address`, title: `Where ${what} runs; kept in this browser` });
  input.addEventListener("change", () => {
    localStorage.setItem(store, input.value.trim());
    anchor.href = `${input.value.trim().replace(/\/+$/, "")}${path}`;
  });
  return h("span", { class: "row" }, anchor, h("span", { class: "muted" }, "at"), input);
}

function mlflowLink(runId) {
  return toolLink("mlflow-run", `MLflow run ${runId}`, MLFLOW_STORE, "http://127.0.0.1:5000", `/#/runs/${runId}`,
    "MLflow's UI (mlflow ui --backend-store-uri …)");
}

function dashboardLink(studyId) {
  return toolLink("optuna-dashboard", "Open in optuna-dashboard", DASHBOARD_STORE, "http://127.0.0.1:8080",
    `/dashboard/studies/${studyId}`, "optuna-dashboard (optuna-dashboard <storage URL>)");
}

async function modelPage(id) {
  const model = await api(`/models/${id}`);
  const page = [
    h("h1", {}, model.name),
    h("div", { class: "card" },
      h("div", {}, h("b", {}, "Plugin "), h("code", {}, model.plugin_key), `  ·  version ${model.version}  ·  trained ${when(model.trained_at)}`),
      h("div", {}, h("b", {}, "Parameters "), h("code", {}, JSON.stringify(model.parameters))),
      model.mlflow_run_id ? mlflowLink(model.mlflow_run_id) : h("div", { class: "muted" }, "No MLflow run recorded.")),
  ];
  if (!model.trained_at) {
    page.push(h("p", { class: "muted" }, "Not trained yet: no folds or forecasts to show."));
    return page;
  }
  const [cv, oof] = await Promise.all([api(`/models/${id}/cv`), api(`/models/${id}/out-of-fold`)]);
  const folds = cv.cv_metrics.folds;
  page.push(h("h2", {}, "Cross-validation folds"), h("div", { class: "card" }, foldTimeline(folds)));
  page.push(table([
    { label: "Fold", value: (f) => f.fold, num: true },
    { label: "Train", value: (f) => `${day(f.train_start)} → ${day(f.train_end)}` },
    { label: "Test", value: (f) => `${day(f.test_start)} → ${day(f.test_end)}` },
    { label: "n train", value: (f) => f.n_train, num: true },
    { label: "n test", value: (f) => f.n_test, num: true },
    { label: "MSE", value: (f) => f.mse, num: true },
    { label: "Baseline MSE", value: (f) => f.baseline_mse, num: true },
    { label: "MAE", value: (f) => f.mae, num: true },
    { label: "Dir. accuracy", value: (f) => f.directional_accuracy, num: true },
    { label: "IC", value: (f) => f.ic, num: true },
    { label: "Rank IC", value: (f) => f.rank_ic, num: true },
  ], folds));
  const names = Object.keys(cv.cv_metrics.summary);
  page.push(h("h2", {}, "Summary against the naive baseline (predicting the training mean)"), table([
    { label: "Metric", value: (name) => name },
    { label: "Model", value: (name) => cv.cv_metrics.summary[name], num: true },
    { label: "Naive baseline", value: (name) => cv.cv_metrics.baseline[name], num: true },
  ], names));
  page.push(h("h2", {}, "Out-of-fold forecasts against realised returns"), h("div", { class: "card" }, forecastChart(oof)));
  return page;
}

function foldTimeline(folds) {
  // One row per fold; a thick line per span (train, test), split by nulls between folds.
  const spans = (start, end) => folds.flatMap((f) => [[f[start], `fold ${f.fold}`], [f[end], `fold ${f.fold}`], [null, null]]);
  const trace = (name, start, end, color) => {
    const points = spans(start, end);
    return { type: "scatter", mode: "lines", name, line: { width: 14, color },
      x: points.map((p) => p[0]), y: points.map((p) => p[1]), connectgaps: false };
  };
  return chart("fold-timeline", [
    trace("train", "train_start", "train_end", "#7aa6e0"),
    trace("test", "test_start", "test_end", "#e0884a"),
  ], {
    title: { text: "Train and test spans per fold (purged walk-forward)" },
    xaxis: { type: "date" }, yaxis: { autorange: "reversed", type: "category" },
    height: Math.max(220, 60 + 42 * folds.length),
  });
}

function forecastChart(rows) {
  const symbol = rows.length ? rows[0].symbol : null;
  const mine = rows.filter((r) => r.symbol === symbol);
  const x = mine.map((r) => r.timestamp);
  return chart("forecast-chart", [
    { type: "scatter", mode: "lines", name: "realised return (target)", x, y: mine.map((r) => r.target), line: { color: "#9aa4b2", width: 1 } },
    { type: "scatter", mode: "lines", name: "forecast (out of fold)", x, y: mine.map((r) => r.prediction), line: { color: "#1f5fbf", width: 1.5 } },
  ], { title: { text: `${symbol || ""}: ${mine.length.toLocaleString("en-US")} test-fold forecasts` }, xaxis: { type: "date" } });
}

async function studiesPage(id) {
  const page = await api("/studies?limit=100");
  const studies = page.items;
  const out = [h("h1", {}, "Tuning studies")];
  if (!studies.length) return [...out, h("p", { class: "muted" }, "No studies yet.")];
  out.push(table([
    { label: "Study", value: (s) => link(`#/studies/${s.study_id}`, s.study_name) },
    { label: "Plugin", value: (s) => s.plugin_key },
    { label: "Metric", value: (s) => `${s.metric || "—"} (${s.direction})` },
    { label: "Trials", value: (s) => s.n_trials, num: true },
    { label: "Complete", value: (s) => s.n_complete, num: true },
    { label: "Pruned", value: (s) => s.n_pruned, num: true },
    { label: "Best score", value: (s) => s.best_score, num: true },
    { label: "Stop", value: (s) => s.stop_reason },
    { label: "Created", value: (s) => when(s.created_at) },
  ], studies));
  const chosen = studies.find((s) => String(s.study_id) === id) || studies[0];
  out.push(...await studyDetail(chosen));
  return out;
}

async function studyDetail(study) {
  const [trials, importance] = await Promise.all([
    api(`/studies/${study.study_id}/trials?limit=1000`), api(`/studies/${study.study_id}/importance`),
  ]);
  const items = trials.items;
  const scored = items.filter((t) => t.score !== null);
  const better = study.direction === "maximize" ? Math.max : Math.min;
  let best = null;
  const bestSoFar = scored.filter((t) => t.state === "COMPLETE").map((t) => { best = best === null ? t.score : better(best, t.score); return [t.number, best]; });
  const byState = (state, color) => {
    const mine = scored.filter((t) => t.state === state);
    return { type: "scatter", mode: "markers", name: state.toLowerCase(), x: mine.map((t) => t.number), y: mine.map((t) => t.score),
      marker: { size: 9, color }, text: mine.map((t) => JSON.stringify(t.params)), hovertemplate: "trial %{x}: %{y}<br>%{text}<extra></extra>" };
  };
  const params = Object.entries(importance.importances);
  return [
    h("h2", {}, `${study.study_name}: ${study.metric || "score"} by trial`),
    dashboardLink(study.study_id),
    h("div", { class: "card" }, chart("study-scores", [
      byState("COMPLETE", "#1f5fbf"), byState("PRUNED", "#e0884a"),
      { type: "scatter", mode: "lines", name: "best so far", x: bestSoFar.map((p) => p[0]), y: bestSoFar.map((p) => p[1]), line: { shape: "hv", color: "#1e7b34" } },
    ], { xaxis: { title: { text: "trial" }, dtick: 1 }, yaxis: { title: { text: study.metric || "score" } } })),
    h("h2", {}, "Parameter importance"),
    h("div", { class: "card" }, params.length
      ? chart("study-importance", [{ type: "bar", orientation: "h", x: params.map((p) => p[1]), y: params.map((p) => p[0]), marker: { color: "#1f5fbf" } }],
        { title: { text: `${importance.method} over ${importance.n_trials} complete trials` }, yaxis: { autorange: "reversed" },
          height: Math.max(220, 80 + 34 * params.length) })
      : h("p", { class: "muted" }, importance.note || "No importance: too few complete trials.")),
    h("h2", {}, `Trials (${trials.total})`),
    table([
      { label: "#", value: (t) => t.number, num: true },
      { label: "State", value: (t) => t.state },
      { label: "Score", value: (t) => t.score, num: true },
      { label: "Folds", value: (t) => t.folds_evaluated, num: true },
      { label: "Net Sharpe", value: (t) => t.net_sharpe, num: true },
      { label: "Params", value: (t) => JSON.stringify(t.params) },
      { label: "Seconds", value: (t) => t.duration_s, num: true, digits: 3 },
    ], items),
  ];
}

async function automlPage(id) {
  const tasks = await api("/tasks?kind=automl&status=SUCCESS&limit=50");
  const out = [h("h1", {}, "AutoML leaderboards")];
  if (!tasks.length) return [...out, h("p", { class: "muted" }, "No finished AutoML run yet.")];
  const chosen = tasks.find((t) => t.task_id === id) || tasks[0];
  out.push(table([
    { label: "Run (task)", value: (t) => link(`#/automl/${t.task_id}`, t.task_id.slice(0, 8)) },
    { label: "Finished", value: (t) => when(t.finished_at) },
    { label: "Metric", value: (t) => t.result.metric },
    { label: "Winner", value: (t) => (t.result.best ? t.result.best.plugin_key : "—") },
    { label: "Candidates", value: (t) => t.result.leaderboard.length, num: true },
  ], tasks, (t) => { location.hash = `#/automl/${t.task_id}`; }, tasks.indexOf(chosen)));
  const result = chosen.result;
  const o = result.overfitting || {};
  out.push(
    h("h2", {}, `Leaderboard (${result.metric}, ${result.direction})`),
    table([
      { label: "Rank", value: (r) => r.rank, num: true },
      { label: "Candidate", value: (r) => r.plugin_key },
      { label: "Score", value: (r) => r.score, num: true },
      { label: "Net Sharpe", value: (r) => r.net_sharpe, num: true },
      { label: "Deflated Sharpe", value: (r) => r.deflated_sharpe, num: true },
      { label: "Trials", value: (r) => r.n_trials, num: true },
      { label: "Fit s", value: (r) => r.fit_time_s, num: true, digits: 3 },
      { label: "Params / error", value: (r) => (r.error ? `${r.error.type}: ${r.error.message}` : JSON.stringify(r.params)) },
    ], result.leaderboard),
    h("h2", {}, "Overfitting: how much of the winner's result is selection"),
    result.overfitting ? figures([
      ["deflated Sharpe (DSR)", o.deflated_sharpe, "The winner's PSR against the Sharpe the best of N skill-less trials would reach"],
      ["probability of backtest overfitting", o.pbo, o.pbo_note || "CSCV over the rows' per-period net returns"],
      ["probabilistic Sharpe (PSR)", o.probabilistic_sharpe, "P(true Sharpe > 0)"],
      ["winner's net Sharpe (annualised)", o.best_net_sharpe],
      ["expected max Sharpe of N (per period)", o.expected_max_sharpe],
      ["trials evaluated (N)", o.n_trials],
      ["periods (T)", o.n_periods],
    ]) : h("p", { class: "muted" }, "No overfitting figures in this run."),
    o.note ? h("p", { class: "notice" }, o.note) : null,
    h("div", { class: "card" }, chart("automl-scores", [{
      type: "bar", x: result.leaderboard.map((r) => r.plugin_key), y: result.leaderboard.map((r) => r.score), name: result.metric,
      marker: { color: "#1f5fbf" },
    }], { title: { text: `${result.metric} by candidate` } })),
    result.mlflow_run_id ? h("p", {}, mlflowLink(result.mlflow_run_id)) : null,
  );
  return out;
}

async function tasksPage() {
  const tasks = await api("/tasks?limit=100");
  const busy = tasks.some((t) => t.status === "PENDING" || t.status === "STARTED");
  const rows = table([
    { label: "Task", value: (t) => h("code", {}, t.task_id.slice(0, 8)) },
    { label: "Kind", value: (t) => t.kind },
    { label: "Status", value: (t) => h("span", { class: `status-${t.status}` }, t.status) },
    { label: "Progress", value: (t) => h("span", {}, h("progress", { max: 1, value: t.progress }), ` ${Math.round(100 * t.progress)}%`) },
    { label: "Message", value: (t) => (t.error ? `${t.error.type}: ${t.error.message}` : t.progress_message || "") },
    { label: "Parts", value: (t) => (t.children_total ? `${t.children_done}/${t.children_total}` : ""), num: true },
    { label: "Submitted", value: (t) => when(t.submitted_at) },
    { label: "Finished", value: (t) => when(t.finished_at) },
  ], tasks);
  return [
    h("h1", {}, "Tasks"),
    h("p", { class: "muted" }, `Live: refreshed every ${POLL_MS / 1000} s. `,
      busy ? "Tasks are running." : "No task running now."),
    tasks.length ? rows : h("p", { class: "muted" }, "No tasks yet."),
  ];
}

// -- routing ---------------------------------------------------------------------------
const ROUTES = [
  [/^#\/features\/([\w-]+)$/, "features", (m) => featurePage(m[1])],
  [/^#\/features$/, "features", () => featuresPage()],
  [/^#\/models\/([\w-]+)$/, "models", (m) => modelPage(m[1])],
  [/^#\/models$/, "models", () => modelsPage()],
  [/^#\/studies(?:\/(\d+))?$/, "studies", (m) => studiesPage(m[1])],
  [/^#\/automl(?:\/([\w-]+))?$/, "automl", (m) => automlPage(m[1])],
  [/^#\/tasks$/, "tasks", () => tasksPage(), true],
];

async function render() {
  stopPolling();
  const hash = location.hash || "#/features";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) { location.hash = "#/features"; return; }
  const [pattern, page, build, polls] = route;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  const seq = ++renderSeq;
  if (!apiKey()) {
    view.replaceChildren(h("p", { class: "notice" }, "Enter an API key above to browse (any role; read is enough). ",
      "The key stays in this browser tab only."));
    return;
  }
  if (!view.dataset.page || view.dataset.page !== hash) view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await build(hash.match(pattern));
    if (seq !== renderSeq) return; // the user moved on meanwhile
    view.replaceChildren(...content.filter((node) => node !== null && node !== undefined));
    view.dataset.page = hash;
    if (polls) pollTimer = setTimeout(render, POLL_MS);
  } catch (error) {
    if (seq !== renderSeq) return;
    view.replaceChildren(showError(error));
    view.dataset.page = hash;
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  if (input.value.trim()) sessionStorage.setItem(KEY_STORE, input.value.trim());
  input.value = "";
  render();
});
document.getElementById("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORE); render(); });
window.addEventListener("hashchange", render);
render();
