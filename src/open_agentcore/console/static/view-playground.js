// The playground: invoke any runtime or endpoint with a JSON payload and watch the answer arrive,
// frame by frame for a stream, or talk to a WebSocket agent.

import * as api from "./api.js";
import { h, mount } from "./dom.js";

export async function playgroundView(query) {
  const runtimes = await api.listRuntimes();
  const runtimePicker = h("select", { id: "pg-runtime" }, runtimes.map((runtime) =>
    h("option", { value: runtime.agentRuntimeId, "data-arn": runtime.agentRuntimeArn }, `${runtime.agentRuntimeName} (${runtime.agentRuntimeId})`)));
  const qualifier = h("select", { id: "pg-qualifier" }, h("option", { value: "DEFAULT" }, "DEFAULT"));
  const sessionId = h("input", { id: "pg-session", spellcheck: "false", value: query.get("session") || crypto.randomUUID() });
  const payload = h("textarea", { id: "pg-payload", spellcheck: "false" }, '{\n  "prompt": "Hello"\n}');
  const payloadHint = h("div", { class: "hint", id: "pg-payload-hint" }, "JSON, sent as the request body.");
  const send = h("button", { type: "submit", id: "pg-send" }, "Invoke");
  const cancel = h("button", { type: "button", class: "ghost", id: "pg-cancel", disabled: true }, "Cancel");
  const frames = h("ol", { class: "frames", id: "pg-frames" });
  const summary = h("span", { class: "muted", id: "pg-summary" }, "Nothing sent yet.");
  const modeHttp = h("button", { type: "button", class: "on", id: "pg-mode-http" }, "HTTP");
  const modeSocket = h("button", { type: "button", id: "pg-mode-ws" }, "WebSocket");
  let mode = "http";
  let socket = null;
  let controller = null;

  if (query.get("runtime")) runtimePicker.value = query.get("runtime");
  const loadQualifiers = async () => {
    qualifier.replaceChildren(h("option", { value: "DEFAULT" }, "DEFAULT"));
    if (!runtimePicker.value) return;
    try {
      for (const endpoint of await api.listEndpoints(runtimePicker.value)) {
        if (endpoint.name !== "DEFAULT") qualifier.append(h("option", { value: endpoint.name }, `${endpoint.name} → v${endpoint.liveVersion || endpoint.targetVersion}`));
      }
    } catch { /* a key may invoke without listing endpoints */ }
  };
  runtimePicker.addEventListener("change", loadQualifiers);

  const parsed = () => {
    try {
      const value = JSON.parse(payload.value);
      payload.classList.remove("invalid");
      payloadHint.className = "hint";
      payloadHint.textContent = "Valid JSON.";
      return { ok: true, text: JSON.stringify(value) };
    } catch (error) {
      payload.classList.add("invalid");
      payloadHint.className = "hint error";
      payloadHint.textContent = `Not JSON: ${error.message}`;
      return { ok: false };
    }
  };
  payload.addEventListener("input", () => { send.disabled = !parsed().ok && mode === "http"; });

  let started = 0;
  const stamp = () => `+${((performance.now() - started) / 1000).toFixed(3)}s`;
  const addFrame = (text, kind = "") => {
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: shown as sent */ }
    frames.append(h("li", { class: `frame ${kind}` }, h("span", { class: "t" }, stamp()), h("pre", {}, shown)));
    frames.scrollTop = frames.scrollHeight;
  };

  const invokeHttp = async () => {
    const body = parsed();
    if (!body.ok) return;
    const option = runtimePicker.selectedOptions[0];
    if (!option) return;
    frames.replaceChildren();
    started = performance.now();
    controller = new AbortController();
    send.disabled = true;
    cancel.disabled = false;
    summary.textContent = "Waiting for the first byte…";
    let count = 0;
    try {
      const response = await api.invoke(option.dataset.arn, qualifier.value, sessionId.value.trim(), body.text, controller.signal);
      const type = response.headers.get("content-type") || "";
      summary.textContent = `${response.status} ${type}`;
      if (type.startsWith("text/event-stream")) {
        for await (const data of events(response.body)) {
          count += 1;
          addFrame(data);
          summary.textContent = `${count} frame${count === 1 ? "" : "s"} streaming…`;
        }
        summary.textContent = `${count} frame${count === 1 ? "" : "s"} in ${stamp().slice(1)}`;
      } else {
        addFrame(await response.text());
        summary.textContent = `${response.status} in ${stamp().slice(1)}`;
      }
    } catch (error) {
      if (error.name === "AbortError") addFrame("cancelled", "meta");
      else addFrame(`${error.code || "Error"}: ${error.message}`, "error");
      summary.textContent = "Failed.";
    } finally {
      send.disabled = false;
      cancel.disabled = true;
      controller = null;
    }
  };

  const socketSend = () => {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(payload.value);
    addFrame(payload.value, "sent");
  };
  const connect = () => {
    if (socket) { socket.close(1000); return; }
    frames.replaceChildren();
    started = performance.now();
    socket = new WebSocket(api.socketUrl(runtimePicker.value, qualifier.value, sessionId.value.trim()));
    summary.textContent = "Connecting…";
    send.disabled = true;
    socket.addEventListener("open", () => { summary.textContent = "Connected."; send.disabled = false; cancel.disabled = false; cancel.textContent = "Disconnect"; addFrame("connected", "meta"); });
    socket.addEventListener("message", (event) => addFrame(typeof event.data === "string" ? event.data : "(binary message)"));
    socket.addEventListener("close", (event) => {
      addFrame(`closed: ${event.code}${event.reason ? ` ${event.reason}` : ""}`, event.code === 1000 ? "meta" : "error");
      summary.textContent = "Disconnected.";
      socket = null; send.disabled = false; cancel.disabled = true; cancel.textContent = "Cancel";
      send.textContent = "Connect";
    });
    send.textContent = "Send";
  };

  const setMode = (next) => {
    if (socket) socket.close(1000);
    mode = next;
    modeHttp.classList.toggle("on", mode === "http");
    modeSocket.classList.toggle("on", mode === "ws");
    send.textContent = mode === "http" ? "Invoke" : "Connect";
    send.disabled = false;
  };
  modeHttp.addEventListener("click", () => setMode("http"));
  modeSocket.addEventListener("click", () => setMode("ws"));
  cancel.addEventListener("click", () => { if (controller) controller.abort(); if (socket) socket.close(1000); });

  const form = h("form", { class: "panel pad", id: "pg-form" },
    h("div", { class: "row" }, h("div", { class: "tabs" }, modeHttp, modeSocket)),
    h("div", { class: "field" }, h("label", { for: "pg-runtime" }, "Runtime"), runtimePicker),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "pg-qualifier" }, "Endpoint"), qualifier),
      h("div", { class: "field" }, h("label", { for: "pg-session" }, "Session id"), sessionId),
    ),
    h("button", { type: "button", class: "ghost", onclick: () => { sessionId.value = crypto.randomUUID(); } }, "New session id"),
    h("div", { class: "field" }, h("label", { for: "pg-payload" }, "Payload"), payload, payloadHint),
    h("div", { class: "row" }, send, cancel),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (mode === "http") invokeHttp();
    else if (socket) socketSend();
    else connect();
  });
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Playground"), h("span", { class: "muted" }, "Invoke a runtime as this key; streamed frames appear as they arrive.")),
    ),
    runtimes.length
      ? h("div", { class: "playground" }, form,
        h("div", { class: "panel" }, h("div", { class: "toolbar" }, h("strong", {}, "Response"), summary), frames))
      : h("div", { class: "panel empty" }, "No runtime this key may see: deploy one first."),
  );
  await loadQualifiers();
  return () => { if (controller) controller.abort(); if (socket) socket.close(1000); };
}

// Server-Sent Events from a fetch body, each frame's data yielded as soon as its blank line arrives.
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(line.startsWith("data: ") ? 6 : 5));
      if (data.length) yield data.join("\n");
    }
  }
}
