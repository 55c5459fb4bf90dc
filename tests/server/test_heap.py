"""Start-up's objects are frozen out of garbage collections while the server serves, and only then."""

from __future__ import annotations

import gc
from pathlib import Path

from .conftest import running_server


def test_startup_objects_are_frozen_while_serving_and_released_after(short_data_dir: Path) -> None:
    assert gc.get_freeze_count() == 0
    with running_server(short_data_dir) as server:
        server.control.list_agent_runtimes()  # a served request: the lifespan has started
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
