"""Fuzzing the runtime server's request parsing with hypothesis, over real sockets to a real server.

Whatever arrives (any Authorization header, X-Amz-Date, presigned query, path, body or content
type, on any control-plane, data-plane or extension route), the server answers in the AWS shape:
never a 5xx, and every refusal carries `x-amzn-ErrorType` and a JSON body with a `message`.
Requests that are not correctly signed never reach a worker.
"""

from __future__ import annotations

import datetime
import json
import shutil
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from open_agentcore.auth import Credential
from open_agentcore.auth.signing import sign_headers
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"echo": payload}
"""

ADMIN = Credential(KEY_ID, SECRET, "admin")
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Target:
    """The fuzzed server, one runtime nothing correctly signed ever calls, one that takes anything."""

    server: Server
    client: httpx.Client
    untouched: str
    echo: str

    def sessions_of(self, runtime_id: str) -> list[str]:
        path = f"/_agentcore/runtimes/{runtime_id}/sessions"
        reply = self.client.get(self.server.url + path, headers=signed("GET", self.server.url + path))
        assert reply.status_code == 200, reply.text
        return [entry["sessionId"] for entry in reply.json()["sessions"]]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    # Not pytest's tmp_path: worker sockets live under the data dir, and their paths must be short.
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    try:
        with running_server(data_dir) as server, httpx.Client(timeout=30) as client:
            untouched = server.deploy({"agent.py": AGENT}, "untouched")["agentRuntimeId"]
            echo = server.deploy({"agent.py": AGENT}, "echo")["agentRuntimeId"]
            yield Target(server, client, untouched, echo)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def signed(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """Headers signed with the admin key by the server's own signer (the CLI's), which puts any
    raw path and query in the canonical request exactly as they are sent."""
    return sign_headers(method, url, ADMIN, "us-east-1", body, headers, now=now)


def assert_aws_shaped(status: int, headers: httpx.Headers, body: bytes) -> None:
    """The property every answer keeps: no 5xx, and any refusal in the AWS error shape."""
    assert status < 500, (status, body[:500])
    if 200 <= status < 300:
        return
    assert headers.get("x-amzn-errortype"), (status, dict(headers), body[:500])
    error = json.loads(body)
    assert isinstance(error, dict) and isinstance(error.get("message"), str), body[:500]


def latin1(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as bytes, so httpx sends latin-1 as it is rather than refusing non-ASCII."""
    return {name: value.encode("latin-1") for name, value in headers.items()}


def check(reply: httpx.Response) -> None:
    assert_aws_shaped(reply.status_code, reply.headers, reply.content)


# Strategies ----------------------------------------------------------------------------------


def as_header(value: str | bytes) -> bytes:
    """A value as the wire allows it in a header: latin-1 bytes, spaces only inside."""
    return (value.encode("latin-1") if isinstance(value, str) else value).strip(b" \t")


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
header_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
).map(as_header)
token = st.text(string.ascii_letters + string.digits + "-_./=+%:", max_size=40)
junk = st.one_of(token, st.text(printable, max_size=80))
hex_text = st.text("0123456789abcdef", max_size=70)
amz_date = st.one_of(
    st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2200, 1, 1)).map(
        lambda moment: moment.strftime("%Y%m%dT%H%M%SZ")
    ),
    st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True),
    junk,
)
credential = st.one_of(
    junk,
    st.tuples(
        st.sampled_from([KEY_ID, "AKIASTRANGER00000000", ""]) | token,
        st.from_regex(r"[0-9]{8}", fullmatch=True) | token,
        st.sampled_from(["us-east-1", "eu-west-1"]) | token,
        st.sampled_from(["bedrock-agentcore", "s3"]) | token,
        st.sampled_from(["aws4_request"]) | token,
    ).map("/".join),
)
signed_header_names = st.lists(
    st.sampled_from(["host", "x-amz-date", "x-amz-content-sha256", "content-type", "authorization"]) | token,
    max_size=6,
).map(";".join)
authorization = st.one_of(
    header_value,
    st.builds(
        lambda algorithm, cred, names, signature, separator: (
            f"{algorithm} Credential={cred}{separator}SignedHeaders={names}{separator}Signature={signature}"
        ),
        st.sampled_from(["AWS4-HMAC-SHA256", "aws4-hmac-sha256", "AWS4-HMAC-SHA1"]) | token,
        credential,
        signed_header_names,
        hex_text | junk,
        st.sampled_from([", ", ",", " , ", ",,", " "]),
    ),
    st.builds(lambda text: f"Bearer {text}", junk),
).map(as_header)
# Everything but the health check; `{untouched}` is a real runtime whose workers must never start.
ROUTES = [
    ("POST", "/runtimes/{untouched}/invocations"),
    ("POST", "/runtimes/{untouched_arn}/invocations?qualifier=DEFAULT"),
    ("POST", "/runtimes/{untouched}/stopruntimesession"),
    ("GET", "/runtimes/{untouched}/invocations/.well-known/agent-card.json"),
    ("GET", "/runtimes/{untouched}/ws"),
    ("PUT", "/runtimes/"),
    ("POST", "/runtimes/"),
    ("GET", "/runtimes/{untouched}/"),
    ("PUT", "/runtimes/{untouched}/"),
    ("DELETE", "/runtimes/{untouched}/"),
    ("POST", "/runtimes/{untouched}/versions/"),
    ("PUT", "/runtimes/{untouched}/runtime-endpoints/"),
    ("GET", "/runtimes/{untouched}/runtime-endpoints/DEFAULT/"),
    ("PUT", "/_agentcore/artifacts"),
    ("GET", "/_agentcore/runtimes/{untouched}/sessions"),
    ("GET", "/_agentcore/runtimes/{untouched}/sessions/s/logs"),
    ("GET", "/_agentcore/runtimes/{untouched}/versions/1/build-log"),
]
route = st.sampled_from(ROUTES)
content_type = st.one_of(
    st.sampled_from(["application/json", "text/plain", "application/octet-stream", "multipart/form-data"]),
    header_value.map(lambda raw: raw.decode("latin-1")),
)
bodies = st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode))


def url_of(target: Target, path: str) -> str:
    arn = f"arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/{target.untouched}"
    return target.server.url + path.format(untouched=target.untouched, untouched_arn=quote(arn, safe=""))


def assert_no_worker_started(target: Target) -> None:
    assert target.sessions_of(target.untouched) == []


# Properties ----------------------------------------------------------------------------------


@FUZZ
@given(
    route=route,
    authorization=authorization,
    date=st.none() | amz_date.map(as_header),
    content_sha=st.none() | (hex_text | junk).map(as_header),
    body=bodies,
)
def test_any_authorization_header_is_refused_in_the_aws_shape(
    target: Target,
    route: tuple[str, str],
    authorization: bytes,
    date: bytes | None,
    content_sha: bytes | None,
    body: bytes,
) -> None:
    method, path = route
    headers: dict[str, str | bytes] = {"Authorization": authorization, SESSION_HEADER: "f" * 33}
    if date is not None:
        headers["X-Amz-Date"] = date
    if content_sha is not None:
        headers["X-Amz-Content-Sha256"] = content_sha
    reply = target.client.request(method, url_of(target, path), content=body, headers=headers)
    check(reply)
    assert reply.status_code in (400, 403), reply.text
    assert_no_worker_started(target)


presigned_parameters = st.fixed_dictionaries(
    {},
    optional={
        "X-Amz-Algorithm": st.sampled_from(["AWS4-HMAC-SHA256"]) | junk,
        "X-Amz-Credential": credential,
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": st.integers(-10, 100_000).map(str) | junk,
        "X-Amz-SignedHeaders": signed_header_names,
        "X-Amz-Signature": hex_text | junk,
        "X-Amz-Security-Token": junk,
        "qualifier": junk,
    },
)


@FUZZ
@given(
    route=route,
    parameters=presigned_parameters,
    extra=st.lists(st.tuples(token, token), max_size=3),
    encode=st.booleans(),
    body=bodies,
)
def test_any_presigned_query_is_refused_in_the_aws_shape(
    target: Target,
    route: tuple[str, str],
    parameters: dict[str, str],
    extra: list[tuple[str, str]],
    encode: bool,
    body: bytes,
) -> None:
    method, path = route
    pairs = [*parameters.items(), *extra]
    # Encoded as a client would, or sent as raw as the wire allows (stray `%`, `=`, `/`).
    escape = (lambda text: quote(text, safe="")) if encode else (lambda text: quote(text, safe="%=/+:"))
    query = "&".join(f"{escape(name)}={escape(value)}" for name, value in pairs)
    url = url_of(target, path)
    if query:
        url += ("&" if "?" in url else "?") + query
    reply = target.client.request(method, url, content=body, headers={SESSION_HEADER: "g" * 33})
    check(reply)
    assert reply.status_code in (400, 403), reply.text
    assert_no_worker_started(target)


@FUZZ
@given(
    route=route,
    flaw=st.sampled_from(["signature", "date", "body", "path", "query", "key", "secret", "drop", "header"]),
    body=bodies,
)
def test_requests_signed_then_altered_are_refused_in_the_aws_shape(
    target: Target, route: tuple[str, str], flaw: str, body: bytes
) -> None:
    method, path = route
    url = url_of(target, path)
    headers = {SESSION_HEADER: "h" * 33, "content-type": "application/json"}
    sent = signed(method, url, body, headers)
    if flaw == "signature":
        sent["authorization"] = sent["authorization"][:-1] + (
            "0" if sent["authorization"][-1] != "0" else "1"
        )
    elif flaw == "date":
        sent["x-amz-date"] = (
            sent["x-amz-date"][:-2] + ("00" if sent["x-amz-date"][-3:-1] != "00" else "01") + "Z"
        )
    elif flaw == "body":
        body += b" "
    elif flaw == "path":
        url = url.replace("/runtimes/", "/runtimes/x", 1).replace("/_agentcore/", "/_agentcore/x", 1)
    elif flaw == "query":
        url += ("&" if "?" in url else "?") + "qualifier=other"
    elif flaw == "key":
        sent = sign_headers(
            method, url, Credential("AKIASTRANGER00000000", SECRET, "x"), "us-east-1", body, headers
        )
    elif flaw == "secret":
        sent = sign_headers(method, url, Credential(KEY_ID, "x" * 40, "x"), "us-east-1", body, headers)
    elif flaw == "drop":
        del sent["x-amz-date"]
    else:
        sent[SESSION_HEADER.lower()] = "i" * 33
    reply = target.client.request(method, url, content=body, headers=sent)
    check(reply)
    assert reply.status_code in (400, 403), reply.text
    assert_no_worker_started(target)


@FUZZ
@given(skew=st.integers(-3 * 86400, 3 * 86400))
def test_a_correct_signature_is_accepted_only_near_the_servers_clock(target: Target, skew: int) -> None:
    url = target.server.url + "/runtimes/"
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=skew)
    reply = target.client.post(url, headers=signed("POST", url, b"", now=now))
    check(reply)
    if abs(skew) <= 4 * 60:
        assert reply.status_code == 200, reply.text
    elif abs(skew) >= 6 * 60:
        assert reply.status_code == 403, reply.text


# Paths: sent with httpcore (httpx's transport), which puts the target on the wire as given; httpx
# itself would resolve dot segments before sending.
segment = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_.~:@!$&'()*+,;=", max_size=30),
    st.sampled_from([".", "..", "", "%2e", "%2E%2e", "%2F", "%2f..", "%00", "%", "%zz", "%ff%fe", "%25"]),
    st.binary(min_size=1, max_size=20).map(lambda raw: "".join(f"%{byte:02X}" for byte in raw)),
    st.integers(1000, 6000).map(lambda size: "a" * size),
)
prefix = st.sampled_from(
    ["", "/runtimes", "/runtimes/{untouched}", "/runtimes/{untouched}/runtime-endpoints", "/_agentcore",
     "/_agentcore/runtimes/{untouched}/sessions", "/runtimes/{untouched}/invocations"]
)  # fmt: skip
raw_query = st.one_of(st.just(""), st.text(string.ascii_letters + string.digits + "%=&+-_.~", max_size=60))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    start=prefix,
    segments=st.lists(segment, max_size=6),
    trailing=st.booleans(),
    query=raw_query,
    sign=st.booleans(),
    body=bodies,
)
# Starlette's own answers, once plain text or a redirect: no such route, not this method, a slash.
@example(method="GET", start="", segments=["nothing"], trailing=False, query="", sign=True, body=b"")
@example(method="PATCH", start="/runtimes", segments=[], trailing=True, query="", sign=True, body=b"")
@example(
    method="GET", start="/_agentcore/runtimes/{untouched}/sessions", segments=[], trailing=True, query="",
    sign=True, body=b"",
)  # fmt: skip
def test_any_path_gets_an_aws_shaped_answer(
    target: Target,
    method: str,
    start: str,
    segments: list[str],
    trailing: bool,
    query: str,
    sign: bool,
    body: bytes,
) -> None:
    # Signed requests name a runtime that does not exist: any method on any path may be a real
    # operation (a DELETE, an invocation), and the runtime nothing may touch must stay untouched.
    runtime = "missing-AAAAAAAAAA" if sign else target.untouched
    path = "/".join([start.format(untouched=runtime), *segments]) + ("/" if trailing else "")
    path = path if path.startswith("/") else "/" + path
    target_bytes = (path + ("?" + query if query else "")).encode()
    headers = {SESSION_HEADER: "j" * 33, "content-type": "application/json"}
    if sign:
        headers = signed(method, target.server.url + target_bytes.decode(), body, headers)
    host, port = target.server.url.removeprefix("http://").split(":")
    url = httpcore.URL(scheme=b"http", host=host.encode(), port=int(port), target=target_bytes)
    headers.setdefault("host", f"{host}:{port}")
    reply = httpcore.request(method, url, headers=list(latin1(headers).items()), content=body)
    headers_in = httpx.Headers([(k.decode(), v.decode("latin-1")) for k, v in reply.headers])
    if method != "HEAD":
        assert_aws_shaped(reply.status, headers_in, reply.content)
    else:
        assert reply.status < 500 and (reply.status < 300 or headers_in.get("x-amzn-errortype"))
    if not sign and unquote(path) != "/_agentcore/health":
        assert reply.status in (400, 403), reply.content
        assert_no_worker_started(target)


# Correctly signed: the routes parse whatever body and content type arrive.
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "agentRuntimeName", "roleArn", "agentRuntimeArtifact", "codeConfiguration", "containerConfiguration",
    "code", "s3", "bucket", "prefix", "runtime", "entryPoint", "containerUri", "environmentVariables",
    "lifecycleConfiguration", "idleRuntimeSessionTimeout", "maxLifetime", "authorizerConfiguration",
    "customJWTAuthorizer", "discoveryUrl", "allowedAudience", "allowedClients", "requestHeaderConfiguration",
    "requestHeaderAllowlist", "protocolConfiguration", "serverProtocol", "networkConfiguration",
    "networkMode", "description", "tags", "clientToken", "name", "agentRuntimeVersion", "maxResults",
    "nextToken",
]  # fmt: skip
shaped_json = st.recursive(
    json_value,
    lambda children: st.dictionaries(st.sampled_from(FIELDS), children, max_size=6),
    max_leaves=20,
)
CONTROL_ROUTES = [
    ("PUT", "/runtimes/"),
    ("POST", "/runtimes/"),
    ("GET", "/runtimes/{runtime}/"),
    ("PUT", "/runtimes/{runtime}/"),
    ("DELETE", "/runtimes/missing-AAAAAAAAAA/"),
    ("POST", "/runtimes/{runtime}/versions/"),
    ("PUT", "/runtimes/{runtime}/runtime-endpoints/"),
    ("POST", "/runtimes/{runtime}/runtime-endpoints/"),
    ("GET", "/runtimes/{runtime}/runtime-endpoints/DEFAULT/"),
    ("PUT", "/runtimes/{runtime}/runtime-endpoints/DEFAULT/"),
    ("DELETE", "/runtimes/{runtime}/runtime-endpoints/DEFAULT/"),
    ("GET", "/_agentcore/runtimes/{runtime}/versions/{version}/build-log"),
    ("GET", "/_agentcore/runtimes/{runtime}/sessions"),
]
query_values = st.one_of(st.text(printable, max_size=20), st.integers(-5, 200_000).map(str))


@FUZZ
@given(
    route=st.sampled_from(CONTROL_ROUTES),
    body=st.one_of(bodies, shaped_json.map(lambda value: json.dumps(value).encode())),
    kind=content_type,
    query=st.dictionaries(
        st.sampled_from(["maxResults", "nextToken", "version", "qualifier", "state"]),
        query_values,
        max_size=3,
    ),
    version=st.sampled_from(["1", "0", "99999", "100000", "x", "-1", "%C3%A9"]),
)
def test_signed_control_plane_requests_with_any_body_get_aws_shaped_answers(
    target: Target,
    route: tuple[str, str],
    body: bytes,
    kind: str,
    query: dict[str, str],
    version: str,
) -> None:
    method, path = route
    url = target.server.url + path.format(runtime=target.untouched, version=version)
    if query:
        url += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
    headers = signed(method, url, body, {"content-type": kind})
    check(target.client.request(method, url, content=body, headers=latin1(headers)))


# (operation, session id): one session that works, one id too long, a stop of an unknown one, none.
DATA_CALLS = [
    ("invocations", "k" * 33),
    ("invocations", "x" * 257),
    ("stopruntimesession", "l" * 33),
    ("stopruntimesession", ""),
]


@FUZZ
@given(
    body=st.one_of(bodies, json_value.map(lambda value: json.dumps(value).encode())),
    kind=content_type,
    accept=st.none() | content_type,
    qualifier=st.none() | st.sampled_from(["DEFAULT", "nope"]) | st.text(printable, max_size=20),
    call=st.sampled_from(DATA_CALLS),
)
@example(  # a content type that is not ASCII once made the relay to the worker fail with a 500
    body=b"{}", kind="t\xe9xt/plain", accept=None, qualifier=None, call=("invocations", "k" * 33)
)
def test_signed_invocations_with_any_body_get_aws_shaped_answers(
    target: Target,
    body: bytes,
    kind: str,
    accept: str | None,
    qualifier: str | None,
    call: tuple[str, str],
) -> None:
    operation, session = call
    url = f"{target.server.url}/runtimes/{target.echo}/{operation}"
    if qualifier is not None:
        url += f"?qualifier={quote(qualifier, safe='')}"
    headers = {"content-type": kind}
    if accept is not None:
        headers["accept"] = accept
    if session:
        headers[SESSION_HEADER.lower()] = session
    sent = signed("POST", url, body, headers)
    reply = target.client.post(url, content=body, headers=latin1(sent))
    check(reply)
    # Only the one session invoked: a refused id or a stop of an unknown one starts no worker.
    assert set(target.sessions_of(target.echo)) <= {"k" * 33}
