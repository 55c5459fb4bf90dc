// The server's own operations, called as the logged-in key: the cookie authenticates, and every
// change carries the CSRF token the server tied to that cookie.

let session = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `${status} ${code}`);
    this.status = status;
    this.code = code;
  }
}

export function current() {
  return session;
}

async function failure(response, announce = true) {
  let message = "";
  try { message = (await response.json()).message; } catch { message = response.statusText; }
  const error = new ApiError(response.status, response.headers.get("x-amzn-errortype") || "Error", message);
  if (announce && response.status === 401) window.dispatchEvent(new CustomEvent("agentcore:logged-out"));
  return error;
}

export async function request(method, path, { body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (method !== "GET" && method !== "HEAD") sent["x-agentcore-csrf"] = session?.csrfToken || "";
  if (body !== undefined && !(typeof body === "string") && !sent["content-type"]) sent["content-type"] = "application/json";
  const response = await fetch(path, {
    method, headers: sent, credentials: "same-origin", signal,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response;
}

export async function json(method, path, body) {
  return (await request(method, path, { body })).json();
}

export async function whoami() {
  const response = await fetch("/_agentcore/console/session", { credentials: "same-origin" });
  session = response.ok ? await response.json() : null;
  return session;
}

export async function login(accessKeyId, secretAccessKey) {
  const response = await fetch("/_agentcore/console/login", {
    method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" },
    body: JSON.stringify({ accessKeyId, secretAccessKey }),
  });
  if (!response.ok) throw await failure(response, false);
  session = await response.json();
  return session;
}

export async function logout() {
  await fetch("/_agentcore/console/logout", { method: "POST", credentials: "same-origin" });
  session = null;
}

const runtime = (id) => encodeURIComponent(id);

export async function listRuntimes() {
  const runtimes = [];
  let nextToken;
  do {
    const query = nextToken ? `?nextToken=${encodeURIComponent(nextToken)}` : "";
    const page = await json("POST", `/runtimes/${query}`, {});
    runtimes.push(...page.agentRuntimes);
    nextToken = page.nextToken;
  } while (nextToken);
  return runtimes;
}

export const getRuntime = (id) => json("GET", `/runtimes/${runtime(id)}/`);
export const listVersions = async (id) => (await json("POST", `/runtimes/${runtime(id)}/versions/`, {})).agentRuntimes;
export const listEndpoints = async (id) => (await json("POST", `/runtimes/${runtime(id)}/runtime-endpoints/`, {})).runtimeEndpoints;
export const listSessions = async (id, all = false) =>
  (await json("GET", `/_agentcore/runtimes/${runtime(id)}/sessions${all ? "?state=all" : ""}`)).sessions;

// The build log from byte `offset` on; `next` is where the following read starts.
export async function buildLog(id, version, offset = 0) {
  const response = await request(
    "GET", `/_agentcore/runtimes/${runtime(id)}/versions/${encodeURIComponent(version)}/build-log?offset=${offset}`,
  );
  const body = new Uint8Array(await response.arrayBuffer());
  return { next: offset + body.length, text: new TextDecoder().decode(body) };
}

// The log from byte `offset` on; `next` is where the following read starts.
export async function sessionLog(id, sessionId, offset) {
  const response = await request(
    "GET", `/_agentcore/runtimes/${runtime(id)}/sessions/${encodeURIComponent(sessionId)}/logs?offset=${offset}`,
  );
  const from = Number(response.headers.get("x-agentcore-log-offset") || offset);
  const body = new Uint8Array(await response.arrayBuffer());
  return { from, next: from + body.length, text: new TextDecoder().decode(body) };
}

export async function stopSession(id, sessionId) {
  await request("POST", `/runtimes/${runtime(id)}/stopruntimesession`, {
    body: {}, headers: { "x-amzn-bedrock-agentcore-runtime-session-id": sessionId },
  });
}

export function invoke(arn, qualifier, sessionId, payload, signal) {
  const query = qualifier ? `?qualifier=${encodeURIComponent(qualifier)}` : "";
  return request("POST", `/runtimes/${encodeURIComponent(arn)}/invocations${query}`, {
    body: payload, signal,
    headers: {
      "content-type": "application/json", accept: "text/event-stream, application/json",
      "x-amzn-bedrock-agentcore-runtime-session-id": sessionId,
    },
  });
}

export function socketUrl(id, qualifier, sessionId) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ "x-amzn-bedrock-agentcore-runtime-session-id": sessionId, csrf: session?.csrfToken || "" });
  if (qualifier) query.set("qualifier", qualifier);
  return `${scheme}//${location.host}/runtimes/${runtime(id)}/ws?${query}`;
}

// Traces come from the server's span store; a server without tracing answers 404.
export async function listTraces({ runtimeId, sessionId, limit = 50, nextToken } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (runtimeId) query.set("runtime", runtimeId);
  if (sessionId) query.set("session", sessionId);
  if (nextToken) query.set("nextToken", nextToken);
  return json("GET", `/_agentcore/traces?${query}`);
}

export const getTrace = (traceId) => json("GET", `/_agentcore/traces/${encodeURIComponent(traceId)}`);

export function tracingMissing(error) {
  return error instanceof ApiError && error.status === 404 && error.code !== "ResourceNotFoundException";
}
