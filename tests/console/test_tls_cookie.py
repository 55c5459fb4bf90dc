"""Over TLS the console's cookie is `Secure`: a browser never sends it over plain HTTP."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path

import httpx

from open_agentcore.console import COOKIE_NAME
from open_agentcore.server import ServerConfig
from tests.conftest import free_port
from tests.server.conftest import KEY_ID, SECRET
from tests.server.uvicorn_harness import serving
from tests.tls_certificates import issue


def test_over_tls_the_cookie_is_secure() -> None:
    root = Path(tempfile.mkdtemp(prefix="oacc-", dir="/tmp"))
    certificates = issue(root)
    config = ServerConfig(
        data_dir=root / "d",
        port=free_port(),
        tls_cert=certificates.cert,
        tls_key=certificates.key,
        warm_pool=0,
    )
    try:
        with (
            serving(config) as url,
            httpx.Client(
                verify=ssl.create_default_context(cafile=str(certificates.ca)), headers={"origin": url}
            ) as client,
        ):
            reply = client.post(
                url + "/_agentcore/console/login", json={"accessKeyId": KEY_ID, "secretAccessKey": SECRET}
            )
            assert reply.status_code == 200, reply.text
            cookie = reply.headers["set-cookie"].lower()
            assert cookie.startswith(COOKIE_NAME) and "; secure" in cookie and "samesite=strict" in cookie
            assert client.get(url + "/_agentcore/console/session").json()["principal"] == "admin"
    finally:
        shutil.rmtree(root, ignore_errors=True)
