// The two charts of the last hour, drawn as inline SVG built node by node (no markup is parsed, and
// colours come from classes in dashboard.css, so the strict content-security-policy holds).

import { MINUTE_MS } from "./activity.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 150;
const PAD = { left: 44, right: 8, top: 10, bottom: 20 };
const FINISHED = ["succeeded", "failed", "canceled"];

function node(tag, attributes, ...children) {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) made.setAttribute(name, String(value));
  for (const child of children) made.append(child instanceof Node ? child : String(child ?? ""));
  return made;
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// A round top for the y axis, so its label reads well: 1, 2, 5 times a power of ten.
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((step) => step >= value);
}

export function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  return value < 60 ? `${value.toFixed(value < 10 ? 1 : 0)} s` : `${(value / 60).toFixed(1)} min`;
}

// The frame both charts share: the plot area, the y axis's top and zero, the window's ends below.
function frame(svg, minutes, top, label) {
  const plot = { x: PAD.left, y: PAD.top, w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  const first = minutes.length ? minutes[0].at : Date.now();
  const last = minutes.length ? minutes[minutes.length - 1].at + MINUTE_MS : first + MINUTE_MS;
  svg.replaceChildren(
    node("line", { class: "axis", x1: plot.x, y1: plot.y + plot.h, x2: plot.x + plot.w, y2: plot.y + plot.h }),
    node("line", { class: "grid", x1: plot.x, y1: plot.y, x2: plot.x + plot.w, y2: plot.y }),
    node("text", { class: "tick", x: plot.x - 4, y: plot.y + 4, "text-anchor": "end" }, label(top)),
    node("text", { class: "tick", x: plot.x - 4, y: plot.y + plot.h, "text-anchor": "end" }, label(0)),
    node("text", { class: "tick", x: plot.x, y: HEIGHT - 4 }, clock(first)),
    node("text", { class: "tick", x: plot.x + plot.w, y: HEIGHT - 4, "text-anchor": "end" }, clock(last)),
  );
  const slot = plot.w / Math.max(minutes.length, 1);
  return {
    x: (index) => plot.x + index * slot,
    y: (value) => plot.y + plot.h - (value / top) * plot.h,
    slot,
  };
}

// Runs finished per minute, stacked by status, with the runs started as a line over them.
export function drawThroughput(svg, activity) {
  const minutes = activity ? activity.minutes : [];
  const top = niceCeiling(Math.max(1, ...minutes.map((m) => Math.max(m.started, m.succeeded + m.failed + m.canceled))));
  const at = frame(svg, minutes, top, (v) => String(v));
  let bars = 0;
  minutes.forEach((m, index) => {
    let base = 0;
    for (const status of FINISHED) {
      if (!m[status]) continue;
      const y = at.y(base + m[status]);
      svg.append(node("rect", {
        class: `bar bar-${status}`, "data-status": status,
        x: at.x(index) + 1, y, width: Math.max(at.slot - 2, 1), height: at.y(base) - y,
      }, node("title", {}, `${clock(m.at)}: ${m[status]} ${status}`)));
      base += m[status];
      bars += 1;
    }
  });
  const points = minutes.map((m, index) => `${at.x(index) + at.slot / 2},${at.y(m.started)}`);
  if (points.length) svg.append(node("polyline", { class: "line line-started", points: points.join(" ") }));
  svg.dataset.bars = String(bars);
}

// Queue wait per minute: p50 and p95 of the runs that started in it, broken where no run started.
export function drawWait(svg, activity) {
  const minutes = activity ? activity.minutes : [];
  const top = niceCeiling(Math.max(0, ...minutes.map((m) => m.p95 ?? 0)));
  const at = frame(svg, minutes, top, seconds);
  let dots = 0;
  for (const [name, pick] of [["p95", (m) => m.p95], ["p50", (m) => m.p50]]) {
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.append(node("polyline", { class: `line line-${name}`, points: run.join(" ") }));
      run = [];
    };
    minutes.forEach((m, index) => {
      const value = pick(m);
      if (value === null || value === undefined) return flush();
      const x = at.x(index) + at.slot / 2;
      const y = at.y(value);
      run.push(`${x},${y}`);
      // p95's dot is the larger, so an equal p50 drawn over it leaves it showing.
      svg.append(node("circle", { class: `dot dot-${name}`, cx: x, cy: y, r: name === "p95" ? 3.5 : 2 },
        node("title", {}, `${clock(m.at)}: ${name} ${seconds(value)}`)));
      dots += 1;
    });
    flush();
  }
  svg.dataset.dots = String(dots);
}
