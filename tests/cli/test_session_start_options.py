"""`agentcore server run --warm-pool N --warm-pool-max N --session-start fork|fresh`: parsed, and bad
values refused."""

from __future__ import annotations

import pytest

from open_agentcore.cli.main import parser


def test_the_pool_bounds_are_parsed() -> None:
    arguments = parser().parse_args(["server", "run", "--warm-pool", "2", "--warm-pool-max", "40"])
    assert (arguments.warm_pool, arguments.warm_pool_max) == (2, 40)
    defaults = parser().parse_args(["server", "run"])
    assert (defaults.warm_pool, defaults.warm_pool_max) == (1, 16)


@pytest.mark.parametrize("flag", ["--warm-pool", "--warm-pool-max"])
@pytest.mark.parametrize("value", ["-1", "many", "1.5", ""])
def test_a_bad_pool_bound_is_a_usage_error(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["server", "run", f"{flag}={value}"])
    assert exited.value.code == 2 and "expected a whole number, 0 or more" in capsys.readouterr().err


def test_session_start_is_fork_unless_fresh_is_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert parser().parse_args(["server", "run"]).session_start == "fork"
    assert parser().parse_args(["server", "run", "--session-start", "fresh"]).session_start == "fresh"
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["server", "run", "--session-start", "spawn"])
    assert exited.value.code == 2 and "invalid choice: 'spawn'" in capsys.readouterr().err


def test_start_forwards_the_pool_bounds_and_the_session_start() -> None:
    from open_agentcore.cli.server import _forwarded, config_of

    arguments = parser().parse_args(
        ["server", "start", "--warm-pool", "2", "--warm-pool-max", "9", "--session-start", "fresh"]
    )
    forwarded = _forwarded(arguments, config_of(arguments))
    again = parser().parse_args(["server", "run", *forwarded])
    assert (again.warm_pool, again.warm_pool_max, again.session_start) == (2, 9, "fresh")
