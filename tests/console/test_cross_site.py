"""Another site, in the same real browser as a signed-in console, tries to act with its cookie.

The attacker's page is served from another port of 127.0.0.1: the same site to a browser, so the
`SameSite=Strict` cookie does go along with its requests. What stops it is the server: requests
another origin makes are refused, whatever they carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import serve_in_thread
from tests.console.agents import GATED
from tests.console.browser import Page
from tests.console.conftest import log_in
from tests.server.conftest import Server


async def _blank(request: object) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>not the console</title><p>hello</p>")


@pytest.fixture
def other_site() -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/", _blank)])) as url:
        yield url


def live_sessions(server: Server, runtime_id: str) -> list[object]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions")
    assert reply.status_code == 200, reply.text
    found: list[object] = reply.json()["sessions"]
    return found


def test_another_site_cannot_invoke_or_open_a_websocket_with_the_console_s_cookie(
    server: Server, page: Page, other_site: str
) -> None:
    created = server.deploy({"agent.py": GATED}, "target")
    runtime_id = created["agentRuntimeId"]
    log_in(page, server.url)
    csrf = page.evaluate("fetch('/_agentcore/console/session').then(r => r.json()).then(s => s.csrfToken)")
    assert csrf  # even were the token to leak, the origin check holds

    page.goto(other_site)
    # A "simple" cross-site POST needs no preflight: the browser sends it, with the cookie.
    sent = page.evaluate(
        f"fetch({json.dumps(server.url + '/runtimes/' + runtime_id + '/invocations')},"
        " {method: 'POST', mode: 'no-cors', credentials: 'include', body: '{\"say\": \"csrf\"}'})"
        ".then(() => 'sent', () => 'failed')"
    )
    assert sent == "sent"
    socket = (
        "new Promise(done => { const s = new WebSocket("
        + json.dumps(server.url.replace("http", "ws") + f"/runtimes/{runtime_id}/ws?csrf={csrf}")
        + "); s.onopen = () => done('opened'); s.onclose = () => done('refused'); })"
    )
    assert page.evaluate(socket) == "refused"
    # Both answers have arrived, and an admitted call starts its session before answering: had
    # either been admitted, the runtime would have a session now.
    assert live_sessions(server, runtime_id) == []

    # The same browser, back on the console's origin, still may: the refusals were the origin's.
    page.goto(f"{server.url}/_agentcore/console/#/runtimes")
    page.wait_for("!!document.querySelector('#runtimes a.runtime-link')")
