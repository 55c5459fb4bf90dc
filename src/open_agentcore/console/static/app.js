// The console's shell: who is logged in, the login form, and the hash router that picks a view.

import * as api from "./api.js";
import { h, mount, problem } from "./dom.js";
import { runtimesView, runtimeView } from "./view-runtimes.js";
import { sessionsView, sessionView } from "./view-sessions.js";
import { tracesView, traceView } from "./view-traces.js";
import { playgroundView } from "./view-playground.js";

const routes = [
  [/^#\/runtimes$/, () => runtimesView()],
  [/^#\/runtimes\/([^/]+)$/, (id) => runtimeView(decode(id))],
  [/^#\/sessions$/, () => sessionsView()],
  [/^#\/sessions\/([^/]+)\/([^/]+)$/, (id, sessionId) => sessionView(decode(id), decode(sessionId))],
  [/^#\/traces$/, () => tracesView()],
  [/^#\/traces\/([^/]+)$/, (traceId) => traceView(decode(traceId))],
  [/^#\/playground(?:\?(.*))?$/, (query) => playgroundView(new URLSearchParams(query || ""))],
];

const decode = decodeURIComponent;
let leaving = null; // what the current view must stop (a log tail, a stream) when another opens

// Views render one after another: a slow view still loading when the hash changes again must not
// mount its page over the newer one's.
let rendering = Promise.resolve();
function show() {
  rendering = rendering.then(render, render);
  return rendering;
}

async function render() {
  if (leaving) { leaving(); leaving = null; }
  if (!api.current()) { loginView(); return; }
  const hash = location.hash || "#/runtimes";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", hash.startsWith(`#/${link.dataset.view}`));
  }
  for (const [pattern, view] of routes) {
    const found = hash.match(pattern);
    if (!found) continue;
    try {
      leaving = (await view(...found.slice(1))) || null;
    } catch (error) {
      if (error.status !== 401) mount(problem(error));
    }
    return;
  }
  location.hash = "#/runtimes";
}

function chrome() {
  const session = api.current();
  document.getElementById("nav").hidden = !session;
  document.getElementById("who").hidden = !session;
  if (session) {
    const principal = document.getElementById("principal");
    principal.replaceChildren(session.principal, h("small", {}, session.accessKeyId));
  }
}

function loginView() {
  chrome();
  const message = h("p", { class: "hint error", id: "login-error", role: "alert" });
  const keyId = h("input", { id: "access-key-id", name: "accessKeyId", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { id: "secret-access-key", name: "secretAccessKey", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel login", id: "login-form" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Use an access key of this server: the admin key (agentcore server credentials) or one made with agentcore server keys create."),
    h("div", { class: "field" }, h("label", { for: "access-key-id" }, "Access key id"), keyId),
    h("div", { class: "field" }, h("label", { for: "secret-access-key" }, "Secret access key"), secret),
    message,
    h("button", { type: "submit", id: "login-submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      await api.login(keyId.value.trim(), secret.value);
      secret.value = "";
      chrome();
      await show();
    } catch (error) {
      message.textContent = error.message;
    }
  });
  mount(form);
  keyId.focus();
}

window.addEventListener("hashchange", show);
window.addEventListener("agentcore:logged-out", () => { api.whoami().then(() => { chrome(); if (!api.current()) show(); }); });
document.getElementById("logout").addEventListener("click", async () => {
  await api.logout();
  chrome();
  await show();
});

await api.whoami();
chrome();
await show();
