// Runtimes: the list, and one runtime with its versions, endpoints, live sessions and build log.

import * as api from "./api.js";
import { badge, h, mount, num, table, when, duration, bytes } from "./dom.js";

export async function runtimesView() {
  mount(h("p", { class: "muted" }, "Loading runtimes…"));
  const runtimes = await api.listRuntimes();
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Agent runtimes"), h("span", { class: "muted" }, `${runtimes.length} visible to this key`)),
      h("a", { class: "button", href: "#/playground" }, "Open playground"),
    ),
    h("div", { class: "panel", id: "runtimes" }, table(
      ["Name", "Id", "Version", "Status", "Updated"],
      runtimes.map((runtime) => [
        h("a", { href: `#/runtimes/${encodeURIComponent(runtime.agentRuntimeId)}`, class: "runtime-link" }, runtime.agentRuntimeName),
        h("code", {}, runtime.agentRuntimeId),
        num(runtime.agentRuntimeVersion),
        badge(runtime.status),
        when(runtime.lastUpdatedAt),
      ]),
      "No runtimes yet: deploy one with agentcore deploy, or boto3's create_agent_runtime.",
    )),
  );
}

export async function runtimeView(id) {
  mount(h("p", { class: "muted" }, "Loading…"));
  const [runtime, versions, endpoints, sessions] = await Promise.all([
    api.getRuntime(id), api.listVersions(id), api.listEndpoints(id), api.listSessions(id),
  ]);
  const log = h("pre", { class: "log", id: "build-log" }, "Choose a version to see its build log.");
  const logStatus = h("span", { class: "muted", id: "build-log-status" });
  let following = null;
  const showLog = (version) => {
    following?.stop();
    following = followBuildLog(id, version, log, logStatus);
  };
  mount(
    h("div", { class: "page-head" },
      h("div", {}, h("a", { href: "#/runtimes" }, "← Runtimes"), h("h1", {}, runtime.agentRuntimeName), h("code", { class: "muted" }, runtime.agentRuntimeArn)),
      h("a", { class: "button", href: `#/playground?runtime=${encodeURIComponent(id)}` }, "Invoke"),
    ),
    h("div", { class: "grid" },
      h("div", { class: "panel pad" }, h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, badge(runtime.status)),
        h("dt", {}, "Latest version"), h("dd", {}, runtime.agentRuntimeVersion),
        h("dt", {}, "Protocol"), h("dd", {}, runtime.protocolConfiguration?.serverProtocol || "HTTP"),
        h("dt", {}, "Idle timeout"), h("dd", {}, duration(runtime.lifecycleConfiguration?.idleRuntimeSessionTimeout)),
        h("dt", {}, "Max lifetime"), h("dd", {}, duration(runtime.lifecycleConfiguration?.maxLifetime)),
        h("dt", {}, "Entry point"), h("dd", {}, h("code", {}, (runtime.agentRuntimeArtifact?.codeConfiguration?.entryPoint || ["container"]).join(" "))),
        runtime.failureReason ? [h("dt", {}, "Failure"), h("dd", { class: "error" }, runtime.failureReason)] : null,
      )),
    ),
    h("h2", {}, "Versions"),
    h("div", { class: "panel", id: "versions" }, table(["Version", "Status", "Created", "Build log"], versions.map((version) => [
      num(version.agentRuntimeVersion), badge(version.status), when(version.lastUpdatedAt),
      h("button", { class: "ghost", type: "button", onclick: () => showLog(version.agentRuntimeVersion) }, "Show"),
    ]))),
    h("h2", {}, "Endpoints"),
    h("div", { class: "panel", id: "endpoints" }, table(["Name", "Target version", "Live version", "Status"], endpoints.map((endpoint) => [
      h("code", {}, endpoint.name), num(endpoint.targetVersion), num(endpoint.liveVersion || "—"), badge(endpoint.status),
    ]))),
    h("h2", {}, "Live sessions"),
    h("div", { class: "panel" }, sessionTable(id, sessions)),
    h("h2", {}, "Build log"),
    h("div", { class: "panel" }, h("div", { class: "toolbar" }, logStatus), log),
  );
  if (versions.length) showLog(versions[0].agentRuntimeVersion);
  return () => following?.stop();
}

const BUILDING = new Set(["CREATING", "UPDATING"]);
const BUILD_POLL_MS = 1000;

// A version's build log, followed while the version builds: new lines are appended as the build
// writes them, and following ends (after a last read) once the version is READY or has failed.
function followBuildLog(id, version, log, status) {
  let offset = 0;
  let stopped = false;
  let timer = null;
  log.textContent = "Loading…";
  status.replaceChildren();
  const read = async () => {
    const chunk = await api.buildLog(id, version, offset);
    if (stopped) return;
    if (offset === 0) log.textContent = "";
    if (chunk.text) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.append(document.createTextNode(chunk.text));
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    offset = chunk.next;
  };
  const building = async () => {
    const found = (await api.listVersions(id)).find((each) => String(each.agentRuntimeVersion) === String(version));
    return found ? BUILDING.has(found.status) : false;
  };
  const poll = async () => {
    try {
      const still = await building();
      await read(); // after the status: a build that just ended has written its last line
      if (stopped) return;
      if (still) {
        status.replaceChildren(h("span", { class: "dot" }), `version ${version} is building; following`);
        timer = setTimeout(poll, BUILD_POLL_MS);
      } else {
        status.replaceChildren(`version ${version}`);
        if (!log.textContent) log.textContent = "(empty)";
      }
    } catch (error) {
      if (!stopped) log.textContent = error.message;
    }
  };
  poll();
  return { stop: () => { stopped = true; clearTimeout(timer); } };
}

export function sessionTable(id, sessions, withRuntime = false) {
  return table(
    [...(withRuntime ? ["Runtime"] : []), "Session", "Owner", "State", "Idle", "Age", "Memory", "Version"],
    sessions.map((session) => [
      ...(withRuntime ? [h("code", {}, session.runtimeName || id)] : []),
      h("a", { href: `#/sessions/${encodeURIComponent(session.runtimeId || id)}/${encodeURIComponent(session.sessionId)}`, class: "session-link" }, session.sessionId),
      session.owner || "—",
      badge(session.state),
      num(session.state === "ENDED" ? "—" : duration(session.idleSeconds)),
      num(session.state === "ENDED" ? when(session.endedAt) : duration(session.ageSeconds)),
      num(bytes(session.memoryBytes)),
      num(session.version ?? "—"),
    ]),
    "No live sessions.",
  );
}
