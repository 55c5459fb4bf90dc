"""The server's admin access key: from the environment, else generated once and kept in the data dir."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .sigv4 import Credential

ADMIN_PRINCIPAL = "admin"
FILE_NAME = "admin-credentials.json"
ENV_KEY_ID = "AGENTCORE_ADMIN_ACCESS_KEY_ID"
ENV_SECRET = "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"  # noqa: S105 - the variable's name, not a secret


class CredentialsError(Exception):
    """The admin credentials are inconsistent or unsafe; the message says how to fix it."""


@dataclass(frozen=True)
class AdminCredentials:
    """The admin key and where it came from: `source` is the environment or the file's path.

    `created` is true on the start that generated the file, so the server can say where the
    new key is kept (never the secret itself).
    """

    credential: Credential
    source: str
    created: bool

    @classmethod
    def load(cls, data_dir: Path, environ: Mapping[str, str]) -> AdminCredentials:
        """Both environment variables when set, else `<data_dir>/admin-credentials.json`.

        A variable set to the empty string counts as unset; one without the other is an error.
        The file is created (mode 0600, atomically, so concurrent first starts agree on one key)
        and reused afterwards; one other users can access, or that is malformed, is refused.
        """
        key_id, secret = environ.get(ENV_KEY_ID), environ.get(ENV_SECRET)
        if key_id or secret:
            if not (key_id and secret):
                raise CredentialsError(f"set both {ENV_KEY_ID} and {ENV_SECRET}, or neither")
            return cls(Credential(key_id, secret, ADMIN_PRINCIPAL), "environment", created=False)
        path = data_dir / FILE_NAME
        created = not path.exists() and _create(path)
        return cls(_read(path), str(path), created)


def load_admin_credential(data_dir: Path, environ: Mapping[str, str]) -> Credential:
    """The admin `Credential` alone; see `AdminCredentials.load`."""
    return AdminCredentials.load(data_dir, environ).credential


def new_access_key_id() -> str:
    """`AKIA` and 16 upper-case letters and digits, shaped like an AWS access key id."""
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def new_secret_access_key() -> str:
    """40 random characters from the alphabet AWS secrets use."""
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _create(path: Path) -> bool:
    """Write a new key file unless one appears meanwhile; true when this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"accessKeyId": new_access_key_id(), "secretAccessKey": new_secret_access_key()}
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # link, unlike rename, fails when the target exists: the first writer wins.
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError as error:
        raise CredentialsError(f"cannot create {path}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return True


def _read(path: Path) -> Credential:
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise CredentialsError(f"{path} is not a regular file")
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(f"{path} is accessible by other users; run: chmod 600 {path}")
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CredentialsError(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        record = None
    key_id, secret = _fields(record)
    if not (key_id and secret):
        raise CredentialsError(
            f'{path} must be {{"accessKeyId": ..., "secretAccessKey": ...}}; delete it to generate a new key'
        )
    return Credential(key_id, secret, ADMIN_PRINCIPAL)


def _fields(record: object) -> tuple[str, str]:
    if not isinstance(record, dict):
        return "", ""
    key_id, secret = record.get("accessKeyId"), record.get("secretAccessKey")
    return (key_id, secret) if isinstance(key_id, str) and isinstance(secret, str) else ("", "")


__all__ = [
    "ADMIN_PRINCIPAL",
    "ENV_KEY_ID",
    "ENV_SECRET",
    "FILE_NAME",
    "AdminCredentials",
    "CredentialsError",
    "load_admin_credential",
    "new_access_key_id",
    "new_secret_access_key",
]
