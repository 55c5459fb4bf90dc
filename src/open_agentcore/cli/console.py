"""`console`: the URL of the runtime server's web console, and opening it in a browser."""

from __future__ import annotations

import argparse
from typing import Any

CONSOLE_PATH = "/_agentcore/console/"


def add_commands(commands: Any) -> None:
    console = commands.add_parser(
        "console",
        help="print the web console's URL (--open: open it in a browser)",
        description="The web console shows runtimes, sessions with their logs, traces, and a playground "
        "that invokes any runtime. Sign in with an access key of the server: the admin key "
        "(agentcore server credentials) or one made with agentcore server keys create.",
        epilog="example: agentcore server start && agentcore console --open",
    )
    console.add_argument("--open", action="store_true", help="also open the URL in the default web browser")
    console.set_defaults(handler=show_console)


def show_console(args: argparse.Namespace) -> int:
    from .endpoint import resolve

    url = resolve().url + CONSOLE_PATH
    print(url)
    if args.open:
        import webbrowser

        if not webbrowser.open(url):
            print("agentcore: no web browser found here; open the URL above yourself")
    return 0


__all__ = ["CONSOLE_PATH", "add_commands"]
