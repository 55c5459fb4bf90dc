"""`agentcore`: the command line of open-agentcore."""

from __future__ import annotations

import argparse
import sys

import open_agentcore

from . import completion, configure, deploy, dev, invoke, logs, manage, server, templates
from .errors import CliError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="agentcore",
        description="Deploy, run and invoke AgentCore agents on your own machines.",
        epilog="Start here: agentcore configure --entrypoint my_agent.py --non-interactive, "
        'then agentcore deploy, then agentcore invoke \'{"prompt": "hello"}\'',
    )
    top.add_argument("--version", action="version", version=f"open-agentcore {open_agentcore.__version__}")
    top.add_argument("--verbose", action="store_true", help="show the full stack trace on errors")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (templates, configure, deploy, invoke, manage, logs, dev, server, completion):
        module.add_commands(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors are one line on stderr and exit code 1 (2 for usage)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as error:
        print(f"agentcore: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the process boundary: one line, the stack only on request
        if args.verbose:
            raise
        print(f"agentcore: {type(error).__name__}: {error} (run with --verbose for details)", file=sys.stderr)
        return 1
    return code


__all__ = ["main", "parser"]
