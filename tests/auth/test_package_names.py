"""The auth package's lazily loaded names are the JWT authorizer's, and each one resolves."""

from __future__ import annotations

import pytest

import open_agentcore.auth as auth
from open_agentcore.auth import jwt_authorizer


def test_every_lazily_loaded_name_is_the_jwt_authorizer_s_own() -> None:
    # The package lists them by hand (importing the module to derive them would load PyJWT and
    # cryptography for every client that only signs requests); this keeps the list honest.
    assert frozenset(jwt_authorizer.__all__) >= auth._JWT_NAMES
    for name in auth._JWT_NAMES:
        assert getattr(auth, name) is getattr(jwt_authorizer, name)
        assert name in auth.__all__


def test_every_public_class_and_function_of_the_authorizer_is_offered() -> None:
    offered = {name for name in jwt_authorizer.__all__ if not name.isupper()}  # constants stay there
    assert offered == auth._JWT_NAMES


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = auth.NoSuchName  # type: ignore[attr-defined]
