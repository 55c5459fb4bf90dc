"""The admin access key: `auth/credentials.py`."""

from __future__ import annotations

import json
import re
import stat
import threading
from pathlib import Path

import pytest

from open_agentcore.auth import AdminCredentials, CredentialsError, load_admin_credential
from open_agentcore.auth.credentials import ENV_KEY_ID, ENV_SECRET, FILE_NAME

ENV = {ENV_KEY_ID: "AKIAENVENVENVENV0000", ENV_SECRET: "env-secret"}


def test_first_start_creates_a_0600_file_with_an_aws_shaped_key(tmp_path: Path) -> None:
    admin = AdminCredentials.load(tmp_path, {})
    path = tmp_path / FILE_NAME
    assert admin.created and admin.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", admin.credential.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", admin.credential.secret_access_key)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_later_starts_reuse_the_file(tmp_path: Path) -> None:
    first = AdminCredentials.load(tmp_path, {})
    again = AdminCredentials.load(tmp_path, {})
    assert again.credential == first.credential and not again.created
    assert load_admin_credential(tmp_path, {}) == first.credential


def test_the_data_dir_is_created_when_missing(tmp_path: Path) -> None:
    assert AdminCredentials.load(tmp_path / "a" / "b", {}).created


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    results: list[AdminCredentials] = []
    threads = [
        threading.Thread(target=lambda: results.append(AdminCredentials.load(tmp_path, {}))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({admin.credential for admin in results}) == 1
    assert [admin.created for admin in results].count(True) == 1
    assert list(tmp_path.iterdir()) == [tmp_path / FILE_NAME]


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    AdminCredentials.load(tmp_path, {})
    admin = AdminCredentials.load(tmp_path, ENV)
    assert (admin.credential.access_key_id, admin.credential.secret_access_key) == tuple(ENV.values())
    assert admin.source == "environment" and admin.credential.principal == "admin"


def test_the_environment_alone_writes_no_file(tmp_path: Path) -> None:
    AdminCredentials.load(tmp_path, ENV)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("present", [ENV_KEY_ID, ENV_SECRET])
def test_half_an_environment_pair_is_refused(tmp_path: Path, present: str) -> None:
    with pytest.raises(CredentialsError, match="both"):
        AdminCredentials.load(tmp_path, {present: ENV[present]})


def test_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    assert AdminCredentials.load(tmp_path, {ENV_KEY_ID: "", ENV_SECRET: ""}).source.endswith(FILE_NAME)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_file_other_users_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    AdminCredentials.load(tmp_path, {})
    (tmp_path / FILE_NAME).chmod(mode)
    with pytest.raises(CredentialsError, match="chmod 600"):
        AdminCredentials.load(tmp_path, {})


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"accessKeyId": "AKIAX"}',
        '{"accessKeyId": "AKIAX", "secretAccessKey": 7}',
        '{"accessKeyId": "", "secretAccessKey": "leaked-value"}',
        '{"accessKeyId": "AKIAX", "secret": "leaked-value"}',
    ],
)
def test_a_malformed_file_is_refused_without_echoing_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match="delete it") as refused:
        AdminCredentials.load(tmp_path, {})
    assert "leaked-value" not in str(refused.value)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()
    with pytest.raises(CredentialsError, match="not a regular file"):
        AdminCredentials.load(tmp_path, {})


def test_the_file_is_plain_json_with_aws_field_names(tmp_path: Path) -> None:
    admin = AdminCredentials.load(tmp_path, {})
    record = json.loads((tmp_path / FILE_NAME).read_text())
    assert record == {
        "accessKeyId": admin.credential.access_key_id,
        "secretAccessKey": admin.credential.secret_access_key,
    }


def test_the_secret_is_not_in_the_repr(tmp_path: Path) -> None:
    admin = AdminCredentials.load(tmp_path, {})
    assert admin.credential.secret_access_key not in repr(admin)
