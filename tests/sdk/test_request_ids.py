"""Request ids and span ids come from generators of their own, never the `random` module's."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from bedrock_agentcore.runtime.context import new_request_id
from open_agentcore.telemetry.server_span import ServerSpan


def draw_request_id() -> str:
    return new_request_id()


def draw_span_id() -> str:
    return f"{ServerSpan('op', None).span_id:016x}"


DRAWS = [pytest.param(draw_request_id, id="request id"), pytest.param(draw_span_id, id="server span id")]


@pytest.mark.parametrize("draw", DRAWS)
def test_drawing_ids_leaves_the_random_module_state_alone(draw: Callable[[], str]) -> None:
    # An agent (or a test framework) that seeded `random` gets the same sequence whether or not
    # ids were drawn in between.
    random.seed(1234)
    expected = [random.random() for _ in range(3)]
    random.seed(1234)
    seen = []
    for _ in range(3):
        draw()
        seen.append(random.random())
    assert seen == expected


@pytest.mark.parametrize("draw", DRAWS)
def test_forked_children_draw_ids_of_their_own(draw: Callable[[], str]) -> None:
    # Sessions forked from one fork server must not repeat each other's ids.
    draws: list[str] = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write one id and leave without running any cleanup
            os.write(write, draw().encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            draws.append(pipe.read().decode())
        assert os.waitpid(pid, 0)[1] == 0
    draws.append(draw())
    assert len(set(draws)) == 3, draws
