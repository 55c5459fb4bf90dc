"""The admin access key: `auth/credentials.py`."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from open_agentcore.auth.credentials import ENV_KEY_ID, ENV_SECRET, CredentialsError, load_admin_credential


def test_generated_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    first = load_admin_credential(tmp_path, {})
    path = tmp_path / "admin-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", first.access_key_id)
    assert len(first.secret_access_key) == 40
    assert load_admin_credential(tmp_path, {}) == first
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    load_admin_credential(tmp_path, {})
    credential = load_admin_credential(tmp_path, {ENV_KEY_ID: "AKIAENV", ENV_SECRET: "s3cret"})
    assert (credential.access_key_id, credential.secret_access_key) == ("AKIAENV", "s3cret")


def test_half_an_environment_pair_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="both"):
        load_admin_credential(tmp_path, {ENV_KEY_ID: "AKIAENV"})


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_admin_credential(tmp_path, {})
    (tmp_path / "admin-credentials.json").chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_admin_credential(tmp_path, {})


def test_a_malformed_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "admin-credentials.json"
    path.write_text('{"accessKeyId": "AKIAX", "secret": "leaked-value"}')
    path.chmod(0o600)
    with pytest.raises(CredentialsError) as refused:
        load_admin_credential(tmp_path, {})
    assert "leaked-value" not in str(refused.value)
