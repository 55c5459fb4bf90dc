"""`agentcore`: the command line of open-agentcore.

Start-up is kept short by building only what a command line needs: `agentcore --help` lists the
commands from the table below without importing any of them, and `agentcore invoke ...` imports
the module of `invoke` alone. Each command module imports its heavy dependencies in its handlers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import open_agentcore

from .errors import CliError

# command → (the module that registers it, its one-line help); in the order `--help` lists them.
# The module's own `add_parser(help=...)` must say the same (a test holds them together).
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("templates", "start a new agent project from a template"),
    "configure": ("configure", "record an agent's entrypoint and settings in .bedrock_agentcore.yaml"),
    "deploy": ("deploy", "deploy the agent to the runtime server (or run it locally with --local)"),
    "invoke": ("invoke", "invoke the agent with a payload and print its answer"),
    "cancel": ("cancel", "cancel one invocation in flight (its session and worker stay)"),
    "status": ("manage", "show the agent's configuration, runtime, endpoints and live sessions"),
    "stop-session": ("manage", "stop a session of the deployed agent (default: the last one used)"),
    "logs": ("logs", "print what the agent's workers wrote (the local log after deploy --local)"),
    "destroy": ("manage", "delete the agent's runtime (and endpoints, sessions) and its configuration"),
    "dev": ("dev", "run the agent locally with hot reload"),
    "server": ("server", "run the embedded runtime server"),
    "console": ("console", "print the web console's URL (--open: open it in a browser)"),
    "completion": ("completion", "print a shell completion script (bash, zsh or fish)"),
}

# Commands that talk to a runtime server also take --endpoint-url after their name (AWS CLI habit).
SERVER_COMMANDS = ("deploy", "invoke", "cancel", "status", "stop-session", "logs", "destroy", "console")
_ENDPOINT_HELP = (
    "the runtime server to talk to; wins over $AGENTCORE_ENDPOINT_URL, $AWS_ENDPOINT_URL and the "
    "server `agentcore server start` recorded (default http://127.0.0.1:8900)"
)


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with the named command's module only; with no argv, every command."""
    top = argparse.ArgumentParser(
        prog="agentcore",
        description="Deploy, run and invoke AgentCore agents on your own machines.",
        epilog="Start here: agentcore configure --entrypoint my_agent.py --non-interactive, "
        'then agentcore deploy, then agentcore invoke \'{"prompt": "hello"}\'. '
        "Each command explains itself: agentcore COMMAND --help",
    )
    top.add_argument("--version", action="version", version=f"open-agentcore {open_agentcore.__version__}")
    top.add_argument("--verbose", action="store_true", help="show the full stack trace on errors")
    top.add_argument("--endpoint-url", metavar="URL", help=_ENDPOINT_HELP)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if argv is None:
        modules = dict.fromkeys(module for module, _ in COMMANDS.values())
    else:
        wanted = _command_in(argv)
        modules = dict.fromkeys([COMMANDS[wanted][0]] if wanted else [])
    for module_name in modules:
        importlib.import_module(f"{__package__}.{module_name}").add_commands(commands)
    for name, (_, summary) in COMMANDS.items():
        if name not in commands.choices:
            # A stand-in that only lists the command: its module is not imported for this run.
            commands.add_parser(name, help=summary, add_help=False)
    for name in SERVER_COMMANDS:
        command = commands.choices.get(name)
        if command is not None and command.add_help:
            command.add_argument(
                "--endpoint-url", metavar="URL", default=argparse.SUPPRESS, help=_ENDPOINT_HELP
            )
    return top


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on the line, if any (the first word that is one, past the top options)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--endpoint-url":
            skip = True
        elif word in COMMANDS:
            return word
        elif not word.startswith("-"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors are one line on stderr and exit code 1 (2 for usage)."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parser(arguments).parse_args(arguments)
    try:
        from .endpoint import use_endpoint

        use_endpoint(args.endpoint_url)
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


__all__ = ["COMMANDS", "main", "parser"]
