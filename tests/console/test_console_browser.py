"""The console in a real headless Chromium: logging in, runtimes, the playground's live stream,
a runtime hidden by policy, and a session log followed live. Each page is screenshotted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.console.agents import GATED, HELLO, invoke_json
from tests.console.browser import Page
from tests.console.conftest import log_in
from tests.console.test_policy import only_runtime
from tests.server.conftest import Server


def frames_shown(page: Page) -> list[str]:
    texts = page.evaluate(
        "[...document.querySelectorAll('#pg-frames li.frame:not(.meta) pre')].map(e => e.textContent)"
    )
    return list(texts)


def test_login_shows_the_runtimes_and_a_runtime_s_page(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    created = server.deploy({"agent.py": HELLO}, "hello_agent", description="Says hello")
    page.goto(f"{server.url}/_agentcore/console/")
    page.wait_for("!!document.getElementById('login-form')")
    shoot("login")
    log_in(page, server.url)
    page.wait_for("!!document.querySelector('#runtimes a.runtime-link')")
    assert "hello_agent" in page.text("#runtimes")
    assert "READY" in page.text("#runtimes")
    assert page.text("#principal").startswith("admin")
    shoot("runtimes")

    page.click("#runtimes a.runtime-link")
    log = "(document.getElementById('build-log')?.textContent ?? '')"
    page.wait_for(f"{log}.length > 20 && !/^(Loading|Choose)/.test({log})")
    assert created["agentRuntimeArn"] in page.text("main")
    assert "DEFAULT" in page.text("#endpoints")
    shoot("runtime")


def test_a_wrong_secret_shows_a_message_and_no_data(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/_agentcore/console/")
    page.fill("#access-key-id", "AKIANOSUCHKEY0000000")
    page.fill("#secret-access-key", "wrong")
    page.click("#login-submit")
    page.wait_for("document.getElementById('login-error').textContent.length > 0")
    assert "not right" in page.text("#login-error")
    assert page.evaluate("document.getElementById('nav').hidden") is True


def test_the_playground_shows_streamed_frames_one_by_one(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    created = server.deploy({"agent.py": GATED}, "streamer")
    arn, session_id = created["agentRuntimeArn"], str(uuid.uuid4())
    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/playground")
    page.wait_for("!!document.querySelector('#pg-runtime option')")
    page.fill("#pg-session", session_id)
    page.fill("#pg-payload", json.dumps({"count": 3}))
    page.click("#pg-send")
    # The answer's headers came: the stream is open and no frame has been released yet.
    page.wait_for("/text\\/event-stream/.test(document.getElementById('pg-summary').textContent)")
    assert frames_shown(page) == []
    for k in range(3):
        assert invoke_json(server, arn, session_id, {"release": k}) == {"released": k}
        page.wait_for(f"document.querySelectorAll('#pg-frames li.frame').length === {k + 1}")
        shown = frames_shown(page)
        assert json.loads(shown[-1]) == {"frame": k, "text": f"chunk {k}"}
        assert len(shown) == k + 1  # frame k+1 is not released yet: it cannot be on the page
    page.wait_for("/3 frames in/.test(document.getElementById('pg-summary').textContent)")
    shoot("playground")


def test_the_playground_talks_to_a_websocket_agent(server: Server, page: Page) -> None:
    server.deploy({"agent.py": GATED}, "talker")
    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/playground")
    page.wait_for("!!document.querySelector('#pg-runtime option')")
    page.click("#pg-mode-ws")
    page.click("#pg-send")  # connect
    page.wait_for("/Connected/.test(document.getElementById('pg-summary').textContent)")
    page.fill("#pg-payload", '"ping"')
    page.click("#pg-send")
    page.wait_for(
        "[...document.querySelectorAll('#pg-frames li pre')].some(e => e.textContent.includes('echo'))"
    )
    assert json.loads(frames_shown(page)[-1]) == {"echo": '"ping"'}


def test_a_runtime_the_key_may_not_see_stays_hidden(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    mine = server.deploy({"agent.py": HELLO}, "visible_one")
    theirs = server.deploy({"agent.py": HELLO}, "hidden_one")
    key_id, secret = only_runtime(server, mine["agentRuntimeArn"])
    log_in(page, server.url, key_id, secret)
    page.wait_for("!!document.querySelector('#runtimes a.runtime-link')")
    assert "visible_one" in page.text("#runtimes")
    assert "hidden_one" not in page.text("main")
    page.goto(f"{server.url}/_agentcore/console/#/playground")
    page.wait_for("!!document.querySelector('#pg-runtime option')")
    options = page.evaluate("[...document.querySelectorAll('#pg-runtime option')].map(o => o.value)")
    assert options == [mine["agentRuntimeId"]]
    page.goto(f"{server.url}/_agentcore/console/#/runtimes/{theirs['agentRuntimeId']}")
    page.wait_for("!!document.querySelector('main .error')")
    assert "not authorized" in page.text("main")
    assert page.evaluate("document.getElementById('versions') === null")  # nothing of it is shown
    shoot("hidden-runtime")


def test_a_session_log_shows_a_line_written_after_the_page_opened(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    created = server.deploy({"agent.py": GATED}, "talkative")
    arn, runtime_id, session_id = created["agentRuntimeArn"], created["agentRuntimeId"], str(uuid.uuid4())
    assert invoke_json(server, arn, session_id, {"say": "first line"}) == {"said": "first line"}
    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/sessions")
    page.wait_for("!!document.querySelector('#sessions a.session-link')")
    assert session_id in page.text("#sessions")
    assert "key:admin" in page.text("#sessions")
    shoot("sessions")

    page.click("#sessions a.session-link")
    page.wait_for("document.getElementById('session-log')?.textContent.includes('first line')")
    later = f"written later {uuid.uuid4()}"
    assert later not in page.text("#session-log")
    invoke_json(server, arn, session_id, {"say": later})
    page.wait_for(f"document.getElementById('session-log').textContent.includes({json.dumps(later)})")
    assert runtime_id in page.text("main")
    shoot("session")

    page.click("#stop-session")
    page.wait_for("document.getElementById('stop-session').textContent === 'Stopped'")
    listed = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions").json()["sessions"]
    assert [entry["sessionId"] for entry in listed] == []


def test_the_console_page_forbids_framing_and_inline_script(server: Server, page: Page) -> None:
    import httpx

    reply = httpx.get(f"{server.url}/_agentcore/console/")
    assert reply.status_code == 200
    policy = reply.headers["content-security-policy"]
    assert (
        "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    )
    assert reply.headers["x-frame-options"] == "DENY"
    assert (
        httpx.get(f"{server.url}/_agentcore/console/assets/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert httpx.get(f"{server.url}/_agentcore/console/assets/nothing.js").status_code == 404
    assert httpx.get(f"{server.url}/_agentcore/console/assets/..%2Fcookies.py").status_code == 404


def test_the_console_follows_a_dark_preference_and_fits_a_phone(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    server.deploy({"agent.py": HELLO}, "on_a_phone")
    page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    log_in(page, server.url)
    page.wait_for("!!document.querySelector('#runtimes a.runtime-link')")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(part) for part in background[background.index("(") + 1 : -1].split(",")[:3])
    assert red + green + blue < 3 * 64, background  # dark, not the light theme's near-white
    shoot("runtimes-dark")
    page.send("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
    page.goto(f"{server.url}/_agentcore/console/#/playground")
    page.wait_for("!!document.querySelector('#pg-runtime option')")
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot("playground-phone")


def test_the_console_without_its_trailing_slash_opens_too(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/_agentcore/console")
    page.wait_for("!!document.getElementById('login-form')")
    assert page.evaluate("location.pathname") == "/_agentcore/console/"
