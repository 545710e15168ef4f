// The dashboard: everything it shows is read from the canonical API (/v1/...) with the key the user
// enters (api.js). Text from the API is only ever put into the page as text nodes, never parsed as markup.

import { addEvent, fromResponse, totals } from "./activity.js";
import { ApiError, KEY_STORE, api } from "./api.js";
import { drawThroughput, drawWait } from "./charts.js";
import { STATUSES, STATUS_AFTER, TERMINAL, applyEvent, merged } from "./runs.js";
import { follow } from "./stream.js";

const PAGE_SIZE = 20;
const REFRESH_MS = 2000;
// A browser opens at most 6 connections to one origin over HTTP/1.1; streams hold theirs open, so the
// list follows only a few runs live (the rest change on the next refresh) and leaves room for requests.
const MAX_ROW_STREAMS = 3;
// The charts' exact numbers are read at most this often; between reads the streams' events add to them.
const ACTIVITY_MS = 5000;
const ACTIVITY_MINUTES = 60;
// What a failed or canceled run offers: the API retries only these.
const RETRYABLE = new Set(["failed", "canceled"]);

const $ = (id) => document.getElementById(id);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return el("span", { class: `status status-${known}`, "data-status": String(status) }, status);
}

const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

// ---- State --------------------------------------------------------------------------------------

const state = {
  filters: { status: "", kind: "" },
  cursors: [null], // cursors[n] reads page n
  page: 0,
  nextCursor: null,
  rows: new Map(), // run id -> run, the current page
  streamed: new Map(), // run id -> the run as its stream left it, maybe ahead of the read model
  rowStreams: new Map(), // run id -> stop()
  detail: null,
  timer: null,
  loading: false,
  again: false,
  activity: null, // activity.js's minutes, or null before the first read
  activityRead: { at: 0, timer: null, loading: false, again: false },
};

function say(text, ok = false) {
  $("message").textContent = text;
  $("message").className = ok ? "ok" : "";
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut();
    say("The key was refused (unknown or revoked).");
  } else {
    say(`Could not load: ${error.message}`);
    $("live").className = "live off";
  }
}

// ---- Counts and list ----------------------------------------------------------------------------

function renderCounts(counts) {
  const tiles = STATUSES.map((status) => {
    const tile = el("button", { type: "button", class: "count", "data-count": status },
      el("strong", {}, counts.data[status] ?? 0), status);
    if (state.filters.status === status) tile.classList.add("selected");
    tile.addEventListener("click", () => setFilters({ ...state.filters, status: state.filters.status === status ? "" : status }));
    return tile;
  });
  const all = el("button", { type: "button", class: "count", "data-count": "total" }, el("strong", {}, counts.total), "all");
  all.addEventListener("click", () => setFilters({ ...state.filters, status: "" }));
  $("counts").replaceChildren(all, ...tiles);
}

function runRow(run) {
  const open = el("button", { type: "button", class: "link", title: run.id }, run.id.slice(0, 8));
  open.addEventListener("click", () => openDetail(run.id));
  const total = run.progress && run.progress.total;
  const progress = run.progress ? `${run.progress.done}${total ? ` / ${total}` : ""}` : "";
  return el("tr", { "data-run-id": run.id },
    el("td", {}, open), el("td", {}, run.kind), el("td", {}, statusBadge(run.status)),
    el("td", {}, progress), el("td", {}, `${run.attempt} / ${run.max_attempts}`),
    el("td", {}, when(run.created_at)), el("td", {}, when(run.finished_at)));
}

function renderRuns() {
  const rows = [...state.rows.values()].map(runRow);
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7" }, "No runs match.")));
  $("run-rows").replaceChildren(...rows);
  $("page-prev").disabled = state.page === 0;
  $("page-next").disabled = !state.nextCursor;
  $("page-number").textContent = `page ${state.page + 1}`;
}

function updateRow(run) {
  const row = [...$("run-rows").children].find((tr) => tr.dataset.runId === run.id);
  if (row) row.replaceWith(runRow(run));
}

async function refresh() {
  if (!sessionStorage.getItem(KEY_STORE)) return;
  if (state.loading) {
    state.again = true; // a filter or page change during a read: read once more after it
    return;
  }
  state.loading = true;
  try {
    const query = { ...state.filters, limit: PAGE_SIZE, cursor: state.cursors[state.page] };
    const [counts, page] = await Promise.all([api("v1/runs:counts", { query: { kind: state.filters.kind } }), api("v1/runs", { query })]);
    renderCounts(counts);
    scheduleActivity();
    state.nextCursor = page.next_cursor;
    state.rows = new Map(page.data.map((run) => {
      const streamed = state.streamed.get(run.id);
      return [run.id, streamed ? merged(streamed, run) : run];
    }));
    renderRuns();
    followRows();
    $("live").className = "live";
  } catch (error) {
    failed(error);
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      refresh();
    }
  }
}

// Live rows: a stream for each unfinished run on the page, up to MAX_ROW_STREAMS.
function followRows() {
  for (const [id, stop] of state.rowStreams) {
    const run = state.rows.get(id);
    if (!run || TERMINAL.has(run.status)) {
      stop();
      state.rowStreams.delete(id);
    }
  }
  for (const run of state.rows.values()) {
    if (state.rowStreams.size >= MAX_ROW_STREAMS) break;
    if (TERMINAL.has(run.status) || state.rowStreams.has(run.id)) continue;
    state.rowStreams.set(run.id, follow(run.id, null, (event) => onRowEvent(run.id, event)));
  }
}

function onRowEvent(runId, event) {
  const run = state.rows.get(runId);
  if (!run) return;
  noteActivity(event, run);
  applyEvent(run, event);
  state.streamed.set(runId, { ...run });
  updateRow(run);
  if (TERMINAL.has(run.status)) {
    state.rowStreams.delete(runId);
    refresh();
  }
}

function setFilters(filters) {
  state.filters = filters;
  state.cursors = [null];
  state.page = 0;
  $("filter-status").value = filters.status;
  $("filter-kind").value = filters.kind;
  refresh();
}

// ---- Activity charts ----------------------------------------------------------------------------

function renderActivity() {
  drawThroughput($("chart-throughput"), state.activity);
  drawWait($("chart-wait"), state.activity);
  const sum = totals(state.activity);
  const finished = sum.succeeded + sum.failed + sum.canceled;
  $("activity-totals").textContent = `(${finished} finished, ${sum.started} started)`;
  $("activity-totals").dataset.finished = String(finished);
  $("activity-totals").dataset.started = String(sum.started);
  // The time of the read the charts stand on (what stream events were added to), for tests and tooltips.
  if (state.activity) $("activity-totals").dataset.asOf = new Date(state.activity.asOf).toISOString();
  else delete $("activity-totals").dataset.asOf;
  $("activity-totals").title = state.activity ? `read at ${new Date(state.activity.asOf).toLocaleTimeString()}` : "";
}

async function loadActivity() {
  const read = state.activityRead;
  if (!sessionStorage.getItem(KEY_STORE)) return;
  if (read.loading) {
    read.again = true;
    return;
  }
  read.loading = true;
  read.at = Date.now();
  try {
    const body = await api("v1/runs:activity", { query: { minutes: ACTIVITY_MINUTES } });
    if (sessionStorage.getItem(KEY_STORE)) {
      state.activity = fromResponse(body, state.activity);
      renderActivity();
    }
  } catch (error) {
    failed(error);
  } finally {
    read.loading = false;
    if (read.again) {
      read.again = false;
      scheduleActivity();
    }
  }
}

// A read of the activity now, or as soon as ACTIVITY_MS has passed since the last one: every caller
// (the refresh timer, each start and end a stream shows) lands in at most one read per period.
function scheduleActivity() {
  const read = state.activityRead;
  if (read.timer !== null) return;
  const wait = Math.max(0, read.at + ACTIVITY_MS - Date.now());
  read.timer = setTimeout(() => {
    read.timer = null;
    loadActivity();
  }, wait);
}

// A stream's event: a start or an end goes into its minute at once, and asks for an exact read soon.
function noteActivity(event, run) {
  if (!STATUS_AFTER[event.type]) return;
  if (addEvent(state.activity, event, run)) renderActivity();
  scheduleActivity();
}

// ---- Detail -------------------------------------------------------------------------------------

function field(name, value) {
  return [el("dt", {}, name), el("dd", {}, value ?? "")];
}

function renderRun(run) {
  const detail = state.detail;
  $("detail-id").textContent = run.id;
  const json = (value) => el("code", {}, JSON.stringify(value));
  $("detail-fields").replaceChildren(
    ...field("status", statusBadge(run.status)), ...field("kind", run.kind), ...field("task", run.task),
    ...field("attempt", `${run.attempt} / ${run.max_attempts}`),
    ...field("progress", run.progress ? `${run.progress.done} / ${run.progress.total ?? "?"}` : ""),
    ...field("cancel requested", run.cancel_requested ? "yes" : "no"),
    ...field("error", run.error ? `${run.error_code}: ${run.error}` : ""),
    ...field("params", json(run.params)), ...field("labels", json(run.labels)),
    ...field("result", run.result ? json(run.result) : ""),
    ...field("created", run.created_at), ...field("started", run.started_at), ...field("finished", run.finished_at));
  $("detail-cancel").hidden = TERMINAL.has(run.status) || !detail;
  $("detail-retry").hidden = !RETRYABLE.has(run.status) || !detail;
  renderRetries(run);
}

// The run this one retries, and the runs that retry it, each a link to its detail.
function renderRetries(run) {
  const parts = [];
  if (run.retry_of) parts.push("retry of ", runLink(run.retry_of));
  const retries = run.retried_by || [];
  if (retries.length) {
    if (parts.length) parts.push("; ");
    parts.push("retried as ");
    retries.forEach((id, index) => {
      if (index) parts.push(", ");
      const link = runLink(id);
      link.dataset.retryId = id;
      parts.push(link);
    });
  }
  $("detail-retried").replaceChildren(...parts);
  $("detail-retried").hidden = !parts.length;
}

function runLink(id, label) {
  const button = el("button", { type: "button", class: "link", title: id }, label || id.slice(0, 8));
  button.addEventListener("click", () => openDetail(id));
  return button;
}

function renderTree(run, children) {
  const items = [];
  if (run.parent_id) items.push(el("p", {}, "parent ", runLink(run.parent_id)));
  if (run.root_id !== run.id) items.push(el("p", {}, "root ", runLink(run.root_id)));
  const list = children.data.map((child) => el("li", { "data-child-id": child.id },
    runLink(child.id), ` ${child.kind} `, statusBadge(child.status)));
  items.push(list.length ? el("ul", {}, ...list) : el("p", {}, "no child runs"));
  if (children.next_cursor) items.push(el("p", {}, "more children than shown"));
  $("detail-tree").replaceChildren(...items);
}

function renderSteps(events) {
  const steps = new Map();
  for (const event of events) {
    const data = event.data || {};
    if (event.type !== "StepStarted" && event.type !== "StepFinished") continue;
    const key = `${data.attempt}:${data.step_key}:${data.sequence}`;
    const step = steps.get(key) || { name: data.step_key, attempt: data.attempt, status: "running" };
    if (event.type === "StepFinished") Object.assign(step, { status: data.status, duration: data.duration_ms, error: data.error });
    steps.set(key, step);
  }
  const rows = [...steps.values()].map((step) => el("tr", {},
    el("td", {}, step.name), el("td", {}, step.attempt), el("td", {}, statusBadge(step.status)),
    el("td", {}, step.duration === undefined || step.duration === null ? "" : `${step.duration} ms`),
    el("td", {}, step.error || "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5" }, "no steps recorded")));
  $("detail-steps").replaceChildren(...rows);
}

function eventRow(event) {
  return el("tr", { "data-event-type": event.type },
    el("td", {}, event.position), el("td", {}, event.version), el("td", {}, event.type),
    el("td", {}, when(event.recorded_at)), el("td", {}, el("code", {}, JSON.stringify(event.data))));
}

// A retry's Idempotency-Key, one per opened detail: a second click (or one after a lost answer) gets the
// run the first one made instead of another. getRandomValues, unlike randomUUID, works over plain http.
function retryKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `dashboard-retry-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function retryShown() {
  const detail = state.detail;
  if (!detail || !detail.run || !RETRYABLE.has(detail.run.status)) return;
  detail.retryKey = detail.retryKey || retryKey();
  $("detail-retry").disabled = true;
  try {
    const run = await api(`v1/runs/${encodeURIComponent(detail.id)}:retry`, {
      method: "POST", headers: { "Idempotency-Key": detail.retryKey },
    });
    if (state.detail === detail) {
      const retries = detail.run.retried_by || [];
      detail.run.retried_by = retries.includes(run.id) ? retries : [...retries, run.id];
      renderRun(detail.run);
    }
    say(`Retried as run ${run.id.slice(0, 8)}.`, true);
    refresh();
  } catch (error) {
    say(`Retry refused: ${error.message}`);
  } finally {
    $("detail-retry").disabled = false;
  }
}

function closeDetail() {
  if (state.detail && state.detail.stop) state.detail.stop();
  state.detail = null;
  $("detail").hidden = true;
}

async function openDetail(runId) {
  closeDetail();
  const detail = { id: runId, run: null, events: [], stop: null };
  state.detail = detail;
  $("detail").hidden = false;
  try {
    const id = encodeURIComponent(runId);
    const [run, events, children] = await Promise.all([
      api(`v1/runs/${id}`), api(`v1/runs/${id}/events`), api("v1/runs", { query: { parent_id: runId, limit: 100 } }),
    ]);
    if (state.detail !== detail) return; // another run was opened meanwhile
    // The log may be ahead of the read model the run was read from: fold it over the run.
    for (const event of events.data) applyEvent(run, event);
    Object.assign(detail, { run, events: events.data });
    renderRun(run);
    renderTree(run, children);
    renderSteps(detail.events);
    $("detail-events").replaceChildren(...detail.events.map(eventRow));
    const last = detail.events.length ? detail.events[detail.events.length - 1].position : null;
    if (!TERMINAL.has(run.status)) detail.stop = follow(runId, last, (event) => onDetailEvent(detail, event));
  } catch (error) {
    failed(error);
  }
}

function onDetailEvent(detail, event) {
  if (state.detail !== detail || detail.events.some((seen) => seen.position === event.position)) return;
  detail.events.push(event);
  noteActivity(event, detail.run);
  applyEvent(detail.run, event);
  renderRun(detail.run);
  renderSteps(detail.events);
  $("detail-events").append(eventRow(event));
}

async function cancelShown() {
  const detail = state.detail;
  if (!detail || !detail.run) return;
  try {
    const run = await api(`v1/runs/${encodeURIComponent(detail.id)}/cancel`, { method: "POST" });
    if (state.detail === detail) {
      detail.run = merged(detail.run, run);
      renderRun(detail.run);
    }
    say(run.status === "canceled" ? "Run canceled." : "Cancel requested.", true);
    refresh();
  } catch (error) {
    say(`Cancel refused: ${error.message}`);
  }
}

// ---- Key ----------------------------------------------------------------------------------------

function stopAll() {
  clearInterval(state.timer);
  state.timer = null;
  clearTimeout(state.activityRead.timer);
  state.activityRead.timer = null;
  for (const stop of state.rowStreams.values()) stop();
  state.rowStreams.clear();
  closeDetail();
}

function signOut() {
  stopAll();
  sessionStorage.removeItem(KEY_STORE);
  state.rows.clear();
  state.streamed.clear();
  state.activity = null;
  $("dashboard").hidden = true;
  $("key-forget").hidden = true;
  $("key-input").value = "";
}

async function signIn() {
  stopAll();
  $("dashboard").hidden = false;
  $("key-forget").hidden = false;
  say("");
  state.activity = null;
  renderActivity();
  await refresh();
  if (sessionStorage.getItem(KEY_STORE)) state.timer = setInterval(refresh, REFRESH_MS);
}

function start() {
  for (const status of STATUSES) $("filter-status").append(el("option", { value: status }, status));
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return say("Enter an API key.");
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    signIn();
  });
  $("key-forget").addEventListener("click", () => { signOut(); say("Key forgotten.", true); });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    setFilters({ status: $("filter-status").value, kind: $("filter-kind").value.trim() });
  });
  $("page-next").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors[state.page + 1] = state.nextCursor;
    state.page += 1;
    refresh();
  });
  $("page-prev").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    refresh();
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("detail-cancel").addEventListener("click", cancelShown);
  $("detail-retry").addEventListener("click", retryShown);
  if (sessionStorage.getItem(KEY_STORE)) signIn();
}

start();
