"""The server's admin access key: from the environment, else generated once and kept in the data dir."""

from __future__ import annotations

import json
import os
import secrets
import stat
import string
from collections.abc import Mapping
from pathlib import Path

from .sigv4 import Credential

ADMIN_PRINCIPAL = "admin"
FILE_NAME = "admin-credentials.json"
ENV_KEY_ID = "AGENTCORE_ADMIN_ACCESS_KEY_ID"
ENV_SECRET = "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"  # noqa: S105 - the variable's name, not a secret


class CredentialsError(Exception):
    """The admin credentials are inconsistent or unsafe; the message says how to fix it."""


def new_access_key_id() -> str:
    """`AKIA` and 16 upper-case letters and digits, shaped like an AWS access key id."""
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def new_secret_access_key() -> str:
    """40 random characters from the alphabet AWS secrets use."""
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def load_admin_credential(data_dir: Path, environ: Mapping[str, str]) -> Credential:
    """The admin key: both environment variables when set, else `<data_dir>/admin-credentials.json`.

    The file is created (mode 0600, atomically) on first use and reused afterwards; one that
    others can read, or that is malformed, is refused rather than trusted.
    """
    key_id, secret = environ.get(ENV_KEY_ID), environ.get(ENV_SECRET)
    if key_id or secret:
        if not (key_id and secret):
            raise CredentialsError(f"set both {ENV_KEY_ID} and {ENV_SECRET}, or neither")
        return Credential(key_id, secret, ADMIN_PRINCIPAL)
    path = data_dir / FILE_NAME
    if not path.exists():
        _write_new(path)
    return _read(path)


def _write_new(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"accessKeyId": new_access_key_id(), "secretAccessKey": new_secret_access_key()}
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _read(path: Path) -> Credential:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        record = json.loads(path.read_text())
        return Credential(str(record["accessKeyId"]), str(record["secretAccessKey"]), ADMIN_PRINCIPAL)
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(
            f"{path} is not a valid credentials file; delete it to generate a new key"
        ) from None


__all__ = [
    "ADMIN_PRINCIPAL",
    "ENV_KEY_ID",
    "ENV_SECRET",
    "CredentialsError",
    "load_admin_credential",
    "new_access_key_id",
    "new_secret_access_key",
]
