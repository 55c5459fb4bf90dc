"""The runtime-server fixtures, shared with the server's own tests."""

from tests.server.conftest import server, short_data_dir

__all__ = ["server", "short_data_dir"]
