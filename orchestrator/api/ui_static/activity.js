// The last hour per minute as the charts show it: GET /v1/runs:activity, plus what the page's streams
// saw since that read. Pure: no DOM, no I/O.
//
// A read is exact as of its `as_of` (the database's time of the read). A stream event recorded after
// it is added to its minute here, once (the list's and the detail's streams can deliver the same event);
// one recorded before it is in the read already (a stream replays a run's past events when it opens),
// so it is not added again. The next read replaces everything with exact numbers.

import { STATUS_AFTER, TERMINAL } from "./runs.js";

export const MINUTE_MS = 60_000;
const REMEMBERED = 2000; // event positions kept to drop repeats; far more than arrive between two reads

export function emptyMinute(at) {
  return { at, started: 0, succeeded: 0, failed: 0, canceled: 0, p50: null, p95: null };
}

// The activity read, as minutes keyed by their start in ms.
export function fromResponse(body, previous) {
  return {
    asOf: Date.parse(body.as_of),
    minutes: body.data.map((m) => ({
      at: Date.parse(m.minute), started: m.started, succeeded: m.succeeded, failed: m.failed,
      canceled: m.canceled, p50: m.queue_wait_p50, p95: m.queue_wait_p95,
    })),
    seen: previous ? previous.seen : new Set(),
  };
}

// The minute holding `at`, adding the minutes up to it at the end (dropping as many at the start) when
// the clock has moved past the last one; null for a time before the window.
function minuteOf(activity, at) {
  const start = Math.floor(at / MINUTE_MS) * MINUTE_MS;
  const { minutes } = activity;
  if (!minutes.length) return null;
  let last = minutes[minutes.length - 1].at;
  while (start > last) {
    last += MINUTE_MS;
    minutes.push(emptyMinute(last));
    minutes.shift();
  }
  return minutes.find((m) => m.at === start) || null;
}

// Adds one stream event of `run` (the run as the page holds it, for its queue wait). Returns whether
// anything changed.
export function addEvent(activity, event, run) {
  if (!activity || !event || !event.recorded_at) return false;
  const status = STATUS_AFTER[event.type];
  if (!status) return false;
  const at = Date.parse(event.recorded_at);
  if (!(at > activity.asOf) || activity.seen.has(event.position)) return false;
  activity.seen.add(event.position);
  if (activity.seen.size > REMEMBERED) activity.seen.delete(activity.seen.values().next().value);
  const minute = minuteOf(activity, at);
  if (!minute) return false;
  if (TERMINAL.has(status)) {
    minute[status] += 1;
    return true;
  }
  // A run starts once: its first RunStarted counts (attempt 1), a retried attempt's does not.
  if (event.data && typeof event.data.attempt === "number" && event.data.attempt > 1) return false;
  minute.started += 1;
  if (minute.p50 === null && run && run.created_at) {
    // The first start of a minute gives its wait until the next read brings the exact percentiles.
    const due = Math.max(Date.parse(run.created_at), run.not_before ? Date.parse(run.not_before) : 0);
    minute.p50 = minute.p95 = Math.max(0, (at - due) / 1000);
  }
  return true;
}

export function totals(activity) {
  const sum = { started: 0, succeeded: 0, failed: 0, canceled: 0 };
  for (const m of activity ? activity.minutes : []) {
    for (const name of Object.keys(sum)) sum[name] += m[name];
  }
  return sum;
}
