"""JSON conversion of handler results, value by value: `runtime/encoding.py`."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any

import pydantic
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp
from bedrock_agentcore.runtime.encoding import dumps


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.datetime


class Model(pydantic.BaseModel):
    name: str
    at: datetime.date


class Opaque:
    __slots__ = ()

    def __str__(self) -> str:
        return "opaque!"


class Plain:
    def __init__(self) -> None:
        self.visible = 1
        self._hidden = 2


def test_one_odd_value_does_not_turn_its_container_into_a_string() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    value = {"ok": 1, "when": moment, "nested": [{"id": uuid.UUID(int=1)}]}
    assert json.loads(dumps(value)) == {
        "ok": 1,
        "when": "2026-01-02T03:04:05+00:00",
        "nested": [{"id": "00000000-0000-0000-0000-000000000001"}],
    }


def test_every_documented_conversion() -> None:
    moment = datetime.datetime(2026, 5, 6, 7, 8, 9)
    value = {
        "dataclass": Point(1, moment),
        "pydantic": Model(name="n", at=datetime.date(2026, 1, 1)),
        "set": {3},
        "frozenset": frozenset({"a"}),
        "tuple": (1, "two"),
        "date": datetime.date(2026, 1, 1),
        "time": datetime.time(12, 30),
        "decimal_int": decimal.Decimal("10"),
        "decimal_frac": decimal.Decimal("1.25"),
        "uuid": uuid.UUID(int=2),
        "bytes": "héllo".encode(),
        "binary": b"\xff\x00",
        "enum": Colour.RED,
        "object": Plain(),
        "opaque": Opaque(),
        "nan": math.nan,
        "inf": math.inf,
    }
    assert json.loads(dumps(value)) == {
        "dataclass": {"x": 1, "when": "2026-05-06T07:08:09"},
        "pydantic": {"name": "n", "at": "2026-01-01"},
        "set": [3],
        "frozenset": ["a"],
        "tuple": [1, "two"],
        "date": "2026-01-01",
        "time": "12:30:00",
        "decimal_int": 10,
        "decimal_frac": 1.25,
        "uuid": "00000000-0000-0000-0000-000000000002",
        "bytes": "héllo",
        "binary": "/wA=",
        "enum": "red",
        "object": {"visible": 1},
        "opaque": "opaque!",
        "nan": None,
        "inf": None,
    }


def test_non_string_keys_become_strings() -> None:
    assert json.loads(dumps({1: "a", (1, 2): "b", None: "c"})) == {"1": "a", "[1, 2]": "b", "null": "c"}


def test_unicode_is_sent_as_is() -> None:
    assert dumps("日本") == '"日本"'


def test_handler_result_is_converted_on_the_wire() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return {"point": Point(2, datetime.datetime(2026, 1, 1)), "tags": {"x"}}

    with TestClient(app) as client:
        reply = client.post("/invocations", json={})
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"point": {"x": 2, "when": "2026-01-01T00:00:00"}, "tags": ["x"]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
)


@given(json_values)
def test_plain_json_values_round_trip_unchanged(value: Any) -> None:
    assert json.loads(dumps(value)) == value


@given(
    st.recursive(
        st.datetimes() | st.uuids() | st.decimals(allow_nan=True) | st.binary() | st.sets(st.integers()),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    )
)
def test_any_mix_of_odd_values_encodes_as_valid_json(value: Any) -> None:
    json.loads(dumps(value))
