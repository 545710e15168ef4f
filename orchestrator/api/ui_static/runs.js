// A run as the page holds it, and what events and fresh reads change in it. Pure: no DOM, no I/O.

export const STATUSES = ["pending", "running", "succeeded", "failed", "canceled"];
export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
export const STATUS_AFTER = { RunStarted: "running", RunSucceeded: "succeeded", RunFailed: "failed", RunCanceled: "canceled" };
// A run only moves forward (pending, running, then one terminal status). Answers arrive out of order
// (a stream's event before the response of the request that caused it; a read model that lags the
// log), so what the page shows never steps back to an earlier status.
export const rank = (status) => (TERMINAL.has(status) ? 2 : status === "running" ? 1 : 0);
export const later = (a, b) => (rank(b) > rank(a) ? b : a);

// What an event changes in a run as the list and the detail show it; the next read confirms it.
export function applyEvent(run, event) {
  const status = STATUS_AFTER[event.type];
  if (status) run.status = later(run.status, status);
  const data = event.data || {};
  if (typeof data.attempt === "number") run.attempt = data.attempt;
  if (event.type === "ProgressReported") run.progress = { done: data.done, total: data.total ?? null };
  if (event.type === "CancelRequested") run.cancel_requested = true;
  if (event.type === "RunFailed") Object.assign(run, { error_code: data.error_code, error: data.error });
  if (TERMINAL.has(status) && !run.finished_at) run.finished_at = event.recorded_at;
}

// A fresh read of a run over what the page holds, keeping the later status of the two.
export function merged(shown, fresh) {
  if (rank(shown.status) <= rank(fresh.status)) return fresh;
  return { ...fresh, status: shown.status, finished_at: shown.finished_at ?? fresh.finished_at };
}
