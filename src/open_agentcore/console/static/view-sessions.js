// Sessions: every live session the key may see, and one session's log (followed live) and invocations.

import * as api from "./api.js";
import { h, mount, problem, table, num, when, duration, badge } from "./dom.js";
import { sessionTable } from "./view-runtimes.js";

const TAIL_INTERVAL_MS = 1000;

export async function sessionsView() {
  const all = h("input", { type: "checkbox", id: "include-ended" });
  const holder = h("div", { class: "panel", id: "sessions" }, h("p", { class: "empty" }, "Loading sessions…"));
  const load = async () => {
    const runtimes = await api.listRuntimes();
    const lists = await Promise.all(runtimes.map(async (runtime) => {
      try {
        const sessions = await api.listSessions(runtime.agentRuntimeId, all.checked);
        return sessions.map((session) => ({ ...session, runtimeId: runtime.agentRuntimeId, runtimeName: runtime.agentRuntimeName }));
      } catch (error) {
        if (error.status === 403) return []; // the key may list the runtime but not its sessions
        throw error;
      }
    }));
    holder.replaceChildren(sessionTable(null, lists.flat(), true));
  };
  all.addEventListener("change", () => load().catch((error) => holder.replaceChildren(problem(error))));
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Sessions"), h("span", { class: "muted" }, "Each session is one worker; idle ones end after the runtime's idle timeout.")),
      h("label", { class: "inline" }, all, "Include ended sessions"),
    ),
    holder,
  );
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}

export async function sessionView(id, sessionId) {
  const log = h("pre", { class: "log", id: "session-log" });
  const status = h("span", { class: "muted", id: "tail-status" }, h("span", { class: "dot" }), "following");
  const invocations = h("div", { class: "panel", id: "invocations" }, h("p", { class: "empty" }, "Loading invocations…"));
  const stop = h("button", { class: "danger", type: "button", id: "stop-session" }, "Stop session");
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    try { await api.stopSession(id, sessionId); stop.textContent = "Stopped"; } catch (error) { stop.disabled = false; alert(error.message); }
  });
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("a", { href: "#/sessions" }, "← Sessions"), h("h1", {}, "Session ", h("code", {}, sessionId)),
        h("span", { class: "muted" }, "on ", h("a", { href: `#/runtimes/${encodeURIComponent(id)}` }, id))),
      h("div", { class: "row" },
        h("a", { class: "button ghost", href: `#/playground?runtime=${encodeURIComponent(id)}&session=${encodeURIComponent(sessionId)}` }, "Invoke in this session"),
        stop),
    ),
    h("h2", {}, "Invocations"),
    invocations,
    h("h2", {}, "Log"),
    h("div", { class: "panel" }, h("div", { class: "toolbar" }, status, h("span", { class: "muted" }, "what the worker printed")), log),
  );
  loadInvocations(id, sessionId, invocations);

  let offset = 0;
  let stopped = false;
  let timer = null;
  const follow = async () => {
    try {
      const read = await api.sessionLog(id, sessionId, offset);
      if (read.from < offset) log.textContent = ""; // a restarted session: its log began again
      if (read.text) {
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
        log.append(document.createTextNode(read.text));
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      offset = read.next;
    } catch (error) {
      if (error.status === 404 && offset === 0) log.textContent = "This session has no log yet.";
      else status.replaceChildren(error.message);
    }
    if (!stopped) timer = setTimeout(follow, TAIL_INTERVAL_MS);
  };
  await follow();
  return () => { stopped = true; clearTimeout(timer); };
}

// The session's invocations are its traces: one root span per call, with its duration.
async function loadInvocations(id, sessionId, holder) {
  try {
    const { traces } = await api.listTraces({ runtimeId: id, sessionId, limit: 100 });
    holder.replaceChildren(table(["Started", "Operation", "Duration", "Spans", "Status"], traces.map((trace) => [
      h("a", { href: `#/traces/${encodeURIComponent(trace.traceId)}` }, when(Number(BigInt(trace.startTimeUnixNano) / 1000000n) / 1000)),
      trace.rootName,
      num(duration(Number(BigInt(trace.durationNanos) / 1000n) / 1e6)),
      num(trace.spanCount),
      badge(trace.status || "ok", (trace.status || "ok").toLowerCase() === "error" ? "error" : "ok"),
    ]), "No invocations recorded for this session."));
  } catch (error) {
    holder.replaceChildren(h("p", { class: "empty" }, api.tracingMissing(error)
      ? "Tracing is not enabled on this server, so invocations are not recorded."
      : error.message));
  }
}
