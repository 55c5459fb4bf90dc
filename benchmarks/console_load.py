"""How long the web console takes to show its first page, with 1,000 sessions in the store.

One `agentcore server run` (fresh data dir, free port) hosts a few runtimes; 1,000 ended sessions
are written straight into its store (spread over the runtimes) and a few live ones are started
with real invocations. Headless Chromium (Debian's package, driven over DevTools as the tests
drive it) then opens the console again and again, each time in a fresh browser context (cold
cache) already holding a login cookie:

- first page: navigation start until the runtime list is on the page (timed inside the page);
- sessions, all: on the sessions page, the click on "Include ended sessions" until every one of
  the 1,000+ rows is on the page.

Medians and p90 of the rounds are printed (times in milliseconds). The machine is shared: read
the numbers as rough, and with the load they were taken under.

    .venv/bin/python benchmarks/console_load.py [--sessions 1000] [--runtimes 4] [--live 8] [--rounds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the DevTools driver the console's tests use

from tests.console.browser import Chromium, Page  # noqa: E402

from open_agentcore.store import SessionState, Store  # noqa: E402

KEY_ID, SECRET = "AKIABENCHCONSOLE0001", "bench-console-secret-not-for-anything-00"
HELLO = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"hello": payload.get("name", "world")}
"""
# Records when a selector first matches (and how many match), from inside the page: no polling error.
OBSERVER = """
window.__marks = {};
window.__watch = (name, selector, count) => {
  const check = () => {
    if (!window.__marks[name] && document.querySelectorAll(selector).length >= count) {
      window.__marks[name] = performance.now();
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
  check();
};
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def runtime_server(data_dir: Path) -> Iterator[str]:
    port = free_port()
    environ = {
        **os.environ,
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID,
        "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
    }
    command = [
        sys.executable,
        "-m",
        "open_agentcore.cli",
        "server",
        "run",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--warm-pool",
        "0",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the runtime server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def clients(url: str) -> tuple[Any, Any]:
    settings: dict[str, Any] = {
        "region_name": "us-east-1",
        "endpoint_url": url,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "config": botocore.config.Config(retries={"max_attempts": 1}),
    }
    return boto3.client("bedrock-agentcore-control", **settings), boto3.client(
        "bedrock-agentcore", **settings
    )


def deploy(url: str, control: Any, name: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agent.py", HELLO)
    request = botocore.awsrequest.AWSRequest(
        method="PUT", url=url + "/_agentcore/artifacts", data=buffer.getvalue()
    )
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(KEY_ID, SECRET), "bedrock-agentcore", "us-east-1"
    ).add_auth(request)
    key = httpx.put(request.url, content=buffer.getvalue(), headers=dict(request.headers), timeout=60).json()[
        "key"
    ]
    created: dict[str, Any] = control.create_agent_runtime(
        agentRuntimeName=name,
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact={
            "codeConfiguration": {
                "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
                "runtime": "PYTHON_3_11",
                "entryPoint": ["agent.py"],
            }
        },
    )
    deadline = time.monotonic() + 180
    while control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])["status"] != "READY":
        if time.monotonic() > deadline:
            raise RuntimeError(f"runtime {name} did not become ready")
        time.sleep(0.2)
    return created


def seed_sessions(data_dir: Path, runtime_ids: list[str], count: int) -> None:
    store = Store.open(f"sqlite:///{data_dir / 'state.db'}")
    try:
        for number in range(count):
            runtime_id = runtime_ids[number % len(runtime_ids)]
            session_id = f"seeded-{number:05d}-{uuid.uuid4().hex[:12]}"
            store.upsert_session(
                runtime_id,
                session_id,
                state=SessionState.ACTIVE,
                backend="process",
                version=1,
                owner="key:admin",
            )
            store.end_session(runtime_id, session_id, "idle timeout")
    finally:
        store.engine.dispose()


def login_cookie(url: str) -> tuple[str, str]:
    login = {"accessKeyId": KEY_ID, "secretAccessKey": SECRET}
    reply = httpx.post(url + "/_agentcore/console/login", json=login, headers={"origin": url})
    reply.raise_for_status()
    return reply.cookies["agentcore_console"], reply.json()["csrfToken"]


def fresh_page(browser: Chromium, url: str, cookie: str) -> Page:
    page = browser.new_page()
    page.send("Network.enable")
    page.send(
        "Network.setCookie",
        name="agentcore_console",
        value=cookie,
        url=url + "/",
        httpOnly=True,
        sameSite="Strict",
    )
    page.send("Page.addScriptToEvaluateOnNewDocument", source=OBSERVER)
    return page


def first_page_ms(browser: Chromium, url: str, cookie: str, runtimes: int) -> float:
    page = fresh_page(browser, url, cookie)
    try:
        page.send(
            "Page.addScriptToEvaluateOnNewDocument",
            source=f"window.__watch('list', '#runtimes a.runtime-link', {runtimes});",
        )
        page.send("Page.navigate", url=url + "/_agentcore/console/#/runtimes")
        return float(page.wait_for("window.__marks && window.__marks.list", timeout=60))
    finally:
        browser.close_page(page)


def all_sessions_ms(browser: Chromium, url: str, cookie: str, rows: int) -> float:
    page = fresh_page(browser, url, cookie)
    try:
        page.goto(url + "/_agentcore/console/#/sessions")
        page.wait_for("!!document.querySelector('#include-ended')", timeout=60)
        page.wait_for("!document.querySelector('#sessions')?.textContent.includes('Loading')", timeout=60)
        page.evaluate(
            "window.__start = performance.now();"
            f" window.__watch('rows', '#sessions tbody tr', {rows});"
            " document.getElementById('include-ended').click()"
        )
        page.wait_for("window.__marks.rows", timeout=120)
        return float(page.evaluate("window.__marks.rows - window.__start"))
    finally:
        browser.close_page(page)


def api_ms(url: str, cookie: str, csrf: str) -> float:
    """The two calls the first page waits for (who is logged in, the runtime list), over HTTP alone."""
    headers = {"origin": url, "x-agentcore-csrf": csrf}
    with httpx.Client(base_url=url, cookies={"agentcore_console": cookie}, headers=headers) as client:
        started = time.perf_counter()
        client.get("/_agentcore/console/session").raise_for_status()
        client.post("/runtimes/", json={}).raise_for_status()
        return (time.perf_counter() - started) * 1000


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{name:<32} median {statistics.median(values):8.1f} ms   p90 {p90:8.1f} ms   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="ended sessions written into the store")
    parser.add_argument("--runtimes", type=int, default=4, help="runtimes the sessions are spread over")
    parser.add_argument("--live", type=int, default=8, help="live sessions started by real invocations")
    parser.add_argument("--rounds", type=int, default=15, help="page loads timed of each kind")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="oac-console-bench-", dir="/tmp"))
    browser: Chromium | None = None
    try:
        with runtime_server(data_dir) as url:
            control, data = clients(url)
            print(f"deploying {args.runtimes} runtimes...", flush=True)
            created = [deploy(url, control, f"bench_{n}") for n in range(args.runtimes)]
            seed_sessions(data_dir, [c["agentRuntimeId"] for c in created], args.sessions)
            for number in range(args.live):
                arn = created[number % len(created)]["agentRuntimeArn"]
                reply = data.invoke_agent_runtime(
                    agentRuntimeArn=arn, runtimeSessionId=str(uuid.uuid4()), payload=b"{}"
                )
                reply["response"].read()
            cookie, csrf = login_cookie(url)
            browser = Chromium()
            first_page_ms(
                browser, url, cookie, args.runtimes
            )  # Chromium's own first start is not the console's
            first = [first_page_ms(browser, url, cookie, args.runtimes) for _ in range(args.rounds)]
            calls = [api_ms(url, cookie, csrf) for _ in range(args.rounds)]
            rows = args.sessions + args.live
            every = [all_sessions_ms(browser, url, cookie, rows) for _ in range(max(3, args.rounds // 3))]
            load = os.getloadavg()
            print(
                f"\n{args.sessions} ended + {args.live} live sessions over {args.runtimes} runtimes; load "
                f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
            )
            print(summary("first page (runtime list)", first))
            print(summary("  of which its two API calls", calls))
            print(summary(f"sessions page, all {rows} rows", every))
            results = {
                "sessions": args.sessions,
                "live": args.live,
                "runtimes": args.runtimes,
                "first_page_ms": first,
                "all_sessions_ms": every,
                "loadavg": load,
            }
            out = REPO / "benchmarks" / "results"
            out.mkdir(exist_ok=True)
            (out / "console_load.json").write_text(json.dumps(results, indent=2))
    finally:
        if browser is not None:
            browser.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
