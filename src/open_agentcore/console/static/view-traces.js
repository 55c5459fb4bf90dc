// Traces: the newest invocations' traces, and one trace as a waterfall of its spans.

import * as api from "./api.js";
import { badge, h, mount, num, table, when, duration } from "./dom.js";

const NOT_ENABLED = "Tracing is not enabled on this server: it keeps no spans to show.";

function nanos(text) {
  try { return BigInt(text); } catch { return 0n; }
}

function seconds(nanoseconds) {
  return Number(nanoseconds / 1000n) / 1e6;
}

export async function tracesView() {
  const holder = h("div", { class: "panel", id: "traces" }, h("p", { class: "empty" }, "Loading traces…"));
  const picker = h("select", { id: "trace-runtime" }, h("option", { value: "" }, "All runtimes"));
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Traces"), h("span", { class: "muted" }, "One trace per invocation, newest first.")),
      h("div", { class: "field" }, h("label", { for: "trace-runtime" }, "Runtime"), picker),
    ),
    holder,
  );
  const load = async () => {
    try {
      const { traces } = await api.listTraces({ runtimeId: picker.value || undefined, limit: 100 });
      holder.replaceChildren(table(["Started", "Root span", "Runtime", "Session", "Duration", "Spans", "Status"], traces.map((trace) => [
        when(seconds(nanos(trace.startTimeUnixNano))),
        h("a", { href: `#/traces/${encodeURIComponent(trace.traceId)}`, class: "trace-link" }, trace.rootName),
        h("code", {}, trace.runtimeId || "—"),
        h("code", {}, trace.sessionId || "—"),
        num(duration(seconds(nanos(trace.durationNanos)))),
        num(trace.spanCount),
        badge(trace.status || "ok", String(trace.status).toLowerCase() === "error" ? "error" : "ok"),
      ]), "No traces yet: invoke a runtime."));
    } catch (error) {
      holder.replaceChildren(h("p", { class: "empty", id: "tracing-missing" }, api.tracingMissing(error) ? NOT_ENABLED : error.message));
    }
  };
  picker.addEventListener("change", load);
  api.listRuntimes().then((runtimes) => {
    for (const runtime of runtimes) picker.append(h("option", { value: runtime.agentRuntimeId }, runtime.agentRuntimeName));
  }).catch(() => {});
  await load();
}

export async function traceView(traceId) {
  let trace;
  try {
    trace = await api.getTrace(traceId);
  } catch (error) {
    mount(h("a", { href: "#/traces" }, "← Traces"),
      h("p", { class: "empty", id: "tracing-missing" }, api.tracingMissing(error) ? NOT_ENABLED : error.message));
    return;
  }
  const spans = trace.spans.map((span) => ({ ...span, start: nanos(span.startTimeUnixNano), end: nanos(span.endTimeUnixNano) }));
  const start = spans.reduce((low, span) => (span.start < low ? span.start : low), spans[0]?.start ?? 0n);
  const end = spans.reduce((high, span) => (span.end > high ? span.end : high), start);
  const total = end - start || 1n;
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("a", { href: "#/traces" }, "← Traces"), h("h1", {}, "Trace ", h("code", {}, trace.traceId)),
        h("span", { class: "muted" }, `${spans.length} spans over ${duration(seconds(total))}`)),
    ),
    h("div", { class: "panel waterfall", id: "waterfall" }, ordered(spans).map(({ span, depth }) => spanRow(span, depth, start, total))),
  );
}

// Parents before children, siblings by start time: the order a reader follows the call.
function ordered(spans) {
  const ids = new Set(spans.map((span) => span.spanId));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parentSpanId && ids.has(span.parentSpanId) ? span.parentSpanId : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const rows = [];
  const walk = (parent, depth) => {
    const list = (children.get(parent) || []).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const span of list) { rows.push({ span, depth }); walk(span.spanId, depth + 1); }
  };
  walk("", 0);
  return rows;
}

function kindOf(span) {
  const attributes = span.attributes || {};
  const keys = Object.keys(attributes).join(" ");
  if (span.status?.code === "ERROR" || span.status?.code === 2) return "error";
  if (/gen_ai\.(request|response|usage)|llm\./.test(keys) || /chat|model|llm/i.test(span.name)) return "model";
  if (/gen_ai\.tool|tool\./.test(keys) || /tool/i.test(span.name)) return "tool";
  return span.service === "open-agentcore" || /server/i.test(span.service || "") ? "server" : "";
}

function spanRow(span, depth, start, total) {
  const left = Number(((span.start - start) * 10000n) / total) / 100;
  const width = Number(((span.end - span.start) * 10000n) / total) / 100;
  const detail = h("div", { class: "span-detail", hidden: true },
    h("dl", { class: "facts" },
      h("dt", {}, "Service"), h("dd", {}, span.service || "—"),
      h("dt", {}, "Kind"), h("dd", {}, String(span.kind ?? "—")),
      h("dt", {}, "Status"), h("dd", {}, `${span.status?.code ?? "UNSET"}${span.status?.message ? `: ${span.status.message}` : ""}`),
      Object.entries(span.attributes || {}).map(([name, value]) => [h("dt", {}, h("code", {}, name)), h("dd", {}, typeof value === "string" ? value : JSON.stringify(value))]),
      (span.events || []).length ? [h("dt", {}, "Events"), h("dd", {}, (span.events || []).map((event) => event.name).join(", "))] : null,
    ),
  );
  const row = h("div", { class: "span-row", "data-span": span.spanId, title: span.name },
    h("div", { class: "span-name", style: null }, h("span", { class: "indent" }, "\u2003".repeat(depth)), span.name),
    h("div", { class: "span-track" }, h("div", { class: `span-bar ${kindOf(span)}`, "data-left": left, "data-width": width })),
    h("div", { class: "span-time" }, duration(seconds(span.end - span.start))),
  );
  // Positions from data: set as properties, never as a style attribute (the CSP forbids inline styles).
  const bar = row.querySelector(".span-bar");
  bar.style.left = `${left}%`;
  bar.style.width = `${Math.max(width, 0.2)}%`;
  row.addEventListener("click", () => { detail.hidden = !detail.hidden; });
  return h("div", {}, row, detail);
}
