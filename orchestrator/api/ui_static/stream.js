// Server-Sent Events read with fetch: EventSource cannot send a header, and the key must not go into a
// URL. Parses the stream (WHATWG event-stream format) and follows a run's stream with resumption.

import { ApiError, keyHeaders, url } from "./api.js";

const MAX_RECONNECTS = 5;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function* messages(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A "\r\n" line end may be split between two chunks: keep a trailing "\r" for the next one.
    const held = buffer.endsWith("\r") ? "\r" : "";
    buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { id: null, event: null, data: [] };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // a heartbeat comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") message.data.push(text);
        else if (field === "id") message.id = text;
        else if (field === "event") message.event = text;
      }
      if (message.data.length) yield { ...message, data: message.data.join("\n") };
    }
    buffer += held;
  }
}

// Follows GET /v1/runs/{id}/stream from `after` (a log position), resuming with Last-Event-ID after a
// dropped connection. The server ends the stream after the run's terminal event, so a normal end is
// the end. Returns a function that stops following.
export function follow(runId, after, onEvent) {
  const controller = new AbortController();
  let lastId = after;
  (async () => {
    for (let failures = 0; failures <= MAX_RECONNECTS && !controller.signal.aborted; ) {
      try {
        const headers = keyHeaders({ Accept: "text/event-stream" });
        if (lastId !== null && lastId !== undefined) headers["Last-Event-ID"] = String(lastId);
        const response = await fetch(url(`v1/runs/${encodeURIComponent(runId)}/stream`), {
          headers, signal: controller.signal, credentials: "omit", cache: "no-store",
        });
        if (response.status === 401 || response.status === 404) return;
        if (!response.ok) throw new ApiError(response.status, `stream: HTTP ${response.status}`);
        failures = 0;
        for await (const message of messages(response.body)) {
          if (message.id) lastId = message.id;
          onEvent(JSON.parse(message.data));
        }
        return;
      } catch (error) {
        if (controller.signal.aborted) return;
        failures += 1;
        await sleep(Math.min(500 * 2 ** failures, 8000));
      }
    }
  })();
  return () => controller.abort();
}
