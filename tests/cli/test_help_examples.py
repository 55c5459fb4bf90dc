"""The examples in every command's `--help`, and the commands in docs/cli.md, are commands the
real parser accepts as written.

An example is a line under `example:`/`examples:` (or the text after it on the same line, several
joined by ` · `); every `agentcore ...` in it, also inside `$(...)`, pipes and `&&` chains, is parsed.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from open_agentcore.cli.main import parser
from tests.conftest import REPO

_PUNCTUATION = set("();<>|&")


def commands(
    top: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name == sub.prog.split()[-1]:  # not an alias
                    yield (*path, name), sub
                    yield from commands(sub, (*path, name))


def examples(help_text: str) -> list[str]:
    found: list[str] = []
    lines = help_text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^examples?:\s*(.*)$", line)
        if not match:
            continue
        if match.group(1):
            found += [part.strip() for part in match.group(1).split(" · ")]
            continue
        for following in lines[index + 1 :]:
            if not following.strip():
                break
            found += [part.strip() for part in following.split(" · ")]
    return found


def agentcore_commands(example: str) -> list[list[str]]:
    """The argument lists of each `agentcore` run in a shell line."""
    lexer = shlex.shlex(example, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found: list[list[str]] = []
    for index, token in enumerate(tokens):
        for inner in re.findall(r"\$\(([^)]*)\)", token):
            found += agentcore_commands(inner)
        if token == "agentcore":
            arguments = []
            for argument in tokens[index + 1 :]:
                if set(argument) <= _PUNCTUATION:
                    break
                arguments.append(argument)
            found.append(arguments)
    return found


def help_of(sub: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # one example per line, as written
    return sub.format_help()


ALL = list(commands(parser()))


@pytest.mark.parametrize(("path", "sub"), ALL, ids=[" ".join(path) for path, _ in ALL])
def test_every_example_parses_with_the_real_parser(
    path: tuple[str, ...], sub: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = examples(help_of(sub, monkeypatch))
    runs = [arguments for example in shown for arguments in agentcore_commands(example)]
    if len(path) == 1 or shown:
        assert any(arguments[: len(path)] == list(path) for arguments in runs), (
            f"`agentcore {' '.join(path)} --help` shows no example of itself: {shown}"
        )
    for arguments in runs:
        try:
            parser().parse_args(arguments)
        except SystemExit:
            pytest.fail(
                f"the example `agentcore {shlex.join(arguments)}` in {' '.join(path)} --help does not parse"
            )


def test_the_extractor_finds_commands_in_shell_lines() -> None:
    line = 'agentcore server start && eval "$(agentcore server credentials)" | cat  # note'
    assert agentcore_commands(line) == [["server", "start"], ["server", "credentials"]]
    assert agentcore_commands("source <(agentcore completion bash)") == [["completion", "bash"]]
    assert examples("x\nexamples: agentcore a · agentcore b\n") == ["agentcore a", "agentcore b"]


def test_every_command_in_the_cli_doc_parses_with_the_real_parser() -> None:
    doc = (REPO / "docs" / "cli.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.DOTALL)
    runs = [
        arguments for block in blocks for line in block.splitlines() for arguments in agentcore_commands(line)
    ]
    assert len(runs) >= 10
    for arguments in runs:
        try:
            parser().parse_args(arguments)
        except SystemExit:
            pytest.fail(f"`agentcore {shlex.join(arguments)}` in docs/cli.md does not parse")
