"""Logging in to the console, its cookie, and what the cookie may and may not do, over real HTTP."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from sqlalchemy import create_engine
from websockets.typing import Origin

from open_agentcore.console import COOKIE_NAME, CSRF_HEADER, CookieSigner
from open_agentcore.store.engine import PAGINATION_KEY, read_setting
from tests.console.agents import HEADERS_ECHO, HTML_PAGE
from tests.console.conftest import KEY_ID, SECRET, ConsoleClient
from tests.server.conftest import Server, sign

LIST_RUNTIMES = "/runtimes/"


def store_secret(server: Server) -> str:
    engine = create_engine(f"sqlite:///{server.data_dir / 'state.db'}")
    try:
        return read_setting(engine, PAGINATION_KEY)
    finally:
        engine.dispose()


def test_login_sets_a_strict_httponly_cookie_that_authenticates_operations(console: ConsoleClient) -> None:
    reply = console.login()
    assert reply.status_code == 200, reply.text
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age="):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http on loopback: a Secure cookie would never come back
    assert reply.json()["principal"] == "admin"
    assert SECRET not in reply.text
    listed = console.call("POST", LIST_RUNTIMES, json={})
    assert listed.status_code == 200, listed.text
    assert listed.json()["agentRuntimes"] == []


def test_without_a_cookie_the_console_session_and_operations_are_refused(console: ConsoleClient) -> None:
    assert console.http.get("/_agentcore/console/session").status_code == 401
    refused = console.call("POST", LIST_RUNTIMES, json={})
    assert refused.status_code == 403  # no credential at all: SigV4's missing authentication


@pytest.mark.parametrize("secret", ["wrong-secret-0000000000000000000000000000", ""])
def test_a_bad_secret_is_refused_with_a_generic_message(
    console: ConsoleClient, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = console.login(KEY_ID, secret)
    assert reply.status_code in (400, 401)
    assert COOKIE_NAME not in reply.headers.get("set-cookie", "")
    if secret:
        assert reply.status_code == 401
        assert reply.headers["x-amzn-errortype"] == "UnauthorizedException"
        assert reply.json()["message"] == "the access key id or secret access key is not right"
        assert secret not in caplog.text


def test_an_unknown_key_gets_the_same_answer_as_a_bad_secret(console: ConsoleClient) -> None:
    unknown = console.login("AKIANOSUCHKEY0000000", SECRET)
    bad = console.login(KEY_ID, SECRET[::-1])
    assert unknown.status_code == bad.status_code == 401
    assert unknown.json() == bad.json()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"accessKeyId": 5}', b"{" + b" " * 5000 + b"}"])
def test_malformed_logins_are_validation_errors(console: ConsoleClient, body: bytes) -> None:
    reply = console.http.post("/_agentcore/console/login", content=body)
    assert reply.status_code == 400
    assert reply.headers["x-amzn-errortype"] == "ValidationException"


def test_logins_are_rate_limited_per_address(console: ConsoleClient) -> None:
    codes = [console.login(KEY_ID, "guess").status_code for _ in range(12)]
    assert codes[0] == 401
    assert codes[-1] == 429
    # Even the right secret waits: guessing must not be able to tell a hit from the limit.
    assert console.login().status_code == 429


def test_a_login_from_another_site_is_refused(console: ConsoleClient) -> None:
    reply = console.http.post(
        "/_agentcore/console/login", json={"accessKeyId": KEY_ID, "secretAccessKey": SECRET},
        headers={"origin": "https://evil.example"},
    )  # fmt: skip
    assert reply.status_code == 403
    assert COOKIE_NAME not in reply.headers.get("set-cookie", "")


def test_a_revoked_key_s_cookie_stops_working(server: Server, console: ConsoleClient) -> None:
    created = server.signed("POST", "/_agentcore/access-keys", json.dumps({"principal": "alice"}).encode())
    assert created.status_code == 200, created.text
    key = created.json()
    assert console.login(key["accessKeyId"], key["secretAccessKey"]).status_code == 200
    assert console.http.get("/_agentcore/console/session").json()["principal"] == "alice"
    revoked = server.signed("DELETE", f"/_agentcore/access-keys/{key['accessKeyId']}")
    assert revoked.status_code in (200, 204), revoked.text
    assert console.http.get("/_agentcore/console/session").status_code == 401
    refused = console.call("POST", LIST_RUNTIMES, json={})
    assert refused.status_code == 401
    assert "no longer active" in refused.json()["message"]


def test_a_tampered_cookie_is_refused(server: Server, console: ConsoleClient) -> None:
    assert console.login().status_code == 200
    value = console.http.cookies[COOKIE_NAME]
    forged = value.replace(f"v1.{KEY_ID}.", "v1.AKIAOTHERKEY00000000.")
    for bad in (forged, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "garbage"):
        client = httpx.Client(base_url=server.url, headers={"origin": server.url}, cookies={COOKIE_NAME: bad})
        with client:
            assert client.get("/_agentcore/console/session").status_code == 401
            reply = client.post(LIST_RUNTIMES, json={}, headers={CSRF_HEADER: console.csrf})
            assert reply.status_code == 401, reply.text


def test_an_expired_cookie_is_refused_and_a_fresh_one_with_the_store_secret_works(server: Server) -> None:
    signer = CookieSigner(store_secret(server))
    expired, _ = signer.mint(KEY_ID, now=time.time() - signer.lifetime - 1)
    fresh, session = signer.mint(KEY_ID)
    for value, status in ((expired, 401), (fresh, 200)):
        cookies = {COOKIE_NAME: value}
        with httpx.Client(base_url=server.url, headers={"origin": server.url}, cookies=cookies) as client:
            reply = client.post(LIST_RUNTIMES, json={}, headers={CSRF_HEADER: session.csrf_token})
            assert reply.status_code == status, reply.text


def test_a_signed_request_is_judged_by_its_signature_not_its_cookie(
    server: Server, console: ConsoleClient
) -> None:
    assert console.login().status_code == 200
    url = server.url + LIST_RUNTIMES
    badly_signed = sign("POST", url, b"{}", secret="not-the-secret-at-all-000000000000000000")
    reply = console.call("POST", LIST_RUNTIMES, content=b"{}", headers=badly_signed)
    assert reply.status_code == 403
    assert reply.headers["x-amzn-errortype"] == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({CSRF_HEADER: ""}, "CSRF"),
        ({CSRF_HEADER: "x" * 43}, "CSRF"),
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "null"}, "origin"),
        ({"sec-fetch-site": "same-site"}, "same-site"),
        ({"sec-fetch-site": "cross-site"}, "cross-site"),
    ],
)
def test_a_change_without_the_csrf_token_or_from_another_site_is_refused(
    console: ConsoleClient, headers: dict[str, str], why: str
) -> None:
    assert console.login().status_code == 200
    reply = console.call("POST", LIST_RUNTIMES, json={}, headers=headers)
    assert reply.status_code == 403, reply.text
    assert why in reply.json()["message"]


def test_a_change_must_name_its_origin(server: Server, console: ConsoleClient) -> None:
    assert console.login().status_code == 200
    cookies = {COOKIE_NAME: console.http.cookies[COOKIE_NAME]}
    with httpx.Client(base_url=server.url, cookies=cookies) as bare:  # no Origin, no Sec-Fetch-Site
        reply = bare.post(LIST_RUNTIMES, json={}, headers={CSRF_HEADER: console.csrf})
    assert reply.status_code == 403
    assert "origin" in reply.json()["message"]


def test_a_cross_site_read_is_refused_too(console: ConsoleClient) -> None:
    assert console.login().status_code == 200
    reply = console.http.get("/_agentcore/console/session", headers={"sec-fetch-site": "cross-site"})
    assert reply.status_code == 403
    assert "csrfToken" not in reply.text


def test_access_keys_are_not_managed_through_the_console(console: ConsoleClient) -> None:
    assert console.login().status_code == 200
    reply = console.call("GET", "/_agentcore/access-keys")
    assert reply.status_code == 403
    assert "signed requests" in reply.json()["message"]


def test_logout_clears_the_cookie(console: ConsoleClient) -> None:
    assert console.login().status_code == 200
    reply = console.http.post("/_agentcore/console/logout")
    assert reply.status_code == 200
    assert COOKIE_NAME in reply.headers["set-cookie"] and "max-age=0" in reply.headers["set-cookie"].lower()
    assert console.http.get("/_agentcore/console/session").status_code == 401


def ws_url(server: Server, query: str) -> str:
    return server.url.replace("http://", "ws://") + "/runtimes/nosuch-0123456789/ws?" + query


@pytest.mark.parametrize(
    ("query", "origin", "why"),
    [("", "SAME", "CSRF"), ("csrf=TOKEN", "https://evil.example", "origin"), ("csrf=TOKEN", None, "origin")],
)
def test_a_websocket_handshake_needs_the_token_and_the_console_s_origin(
    server: Server, console: ConsoleClient, query: str, origin: str | None, why: str
) -> None:
    assert console.login().status_code == 200
    headers = {"cookie": f"{COOKIE_NAME}={console.http.cookies[COOKIE_NAME]}"}
    sent_origin = server.url if origin == "SAME" else origin
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(
            ws_url(server, query.replace("TOKEN", console.csrf)), additional_headers=headers,
            origin=Origin(sent_origin) if sent_origin else None, open_timeout=10,
        )  # fmt: skip
    assert refused.value.response.status_code == 403
    assert why in refused.value.response.body.decode()


def test_a_websocket_handshake_with_the_token_reaches_the_runtime(
    server: Server, console: ConsoleClient
) -> None:
    assert console.login().status_code == 200
    headers = {"cookie": f"{COOKIE_NAME}={console.http.cookies[COOKIE_NAME]}"}
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(
            ws_url(server, f"csrf={console.csrf}"), additional_headers=headers,
            origin=Origin(server.url), open_timeout=10,
        )  # fmt: skip
    # Past authentication: the runtime itself is what is missing.
    assert refused.value.response.status_code == 404


def test_the_worker_never_sees_the_cookie_or_the_csrf_token(server: Server, console: ConsoleClient) -> None:
    created = server.deploy({"agent.py": HEADERS_ECHO}, "echo")
    assert console.login().status_code == 200
    session = {"x-amzn-bedrock-agentcore-runtime-session-id": "console-echo-session"}
    reply = console.call(
        "POST", f"/runtimes/{created['agentRuntimeId']}/invocations", json={}, headers=session
    )
    assert reply.status_code == 200, reply.text
    sent = reply.json()["headers"]
    assert sent["x-amzn-bedrock-agentcore-runtime-session-id"] == "console-echo-session"
    assert "cookie" not in sent and CSRF_HEADER not in sent
    assert console.http.cookies[COOKIE_NAME] not in json.dumps(sent) and console.csrf not in json.dumps(sent)


def test_an_agent_s_html_answer_is_inert_in_the_console_s_origin(
    server: Server, console: ConsoleClient
) -> None:
    created = server.deploy({"agent.py": HTML_PAGE}, "html_agent")
    assert console.login().status_code == 200
    session = {"x-amzn-bedrock-agentcore-runtime-session-id": "console-html-session"}
    reply = console.call(
        "POST", f"/runtimes/{created['agentRuntimeId']}/invocations", json={}, headers=session
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/html") and "owned" in reply.text
    policy = reply.headers["content-security-policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"
