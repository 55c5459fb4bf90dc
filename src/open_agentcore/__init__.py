"""open-agentcore: the self-hosted runtime server, its store, sessions and backends, and the CLI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
