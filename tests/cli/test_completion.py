"""`agentcore completion bash|zsh|fish` (`cli/completion.py`): the scripts the real CLI prints, run in
the real shells: bash always; zsh and fish where they are installed."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from open_agentcore.cli.main import parser


def completion_script(shell: str, directory: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "completion", shell],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    path = directory / f"agentcore.{shell}"
    path.write_text(done.stdout)
    return path


def top_level_commands() -> list[str]:
    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(commands.choices)


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return completion_script("bash", tmp_path_factory.mktemp("bash"))


def bash_complete(script: Path, *words: str) -> list[str]:
    """What bash offers for `words` (the last one is the word being completed)."""
    quoted = " ".join(f"'{word}'" for word in words)
    program = (
        f"source '{script}'; COMP_WORDS=(agentcore {quoted}); COMP_CWORD={len(words)}; "
        'COMPREPLY=(); _agentcore; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_script_is_valid_bash(bash_script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_bash_completes_command_names(bash_script: Path) -> None:
    assert bash_complete(bash_script, "dep") == ["deploy"]
    assert sorted(bash_complete(bash_script, "")) == top_level_commands()


def test_bash_completes_subcommands_options_and_choices(bash_script: Path) -> None:
    assert bash_complete(bash_script, "server", "st") == ["start", "stop", "status"]
    assert bash_complete(bash_script, "invoke", "--lo") == ["--local"]
    assert bash_complete(bash_script, "invoke", "--output", "") == ["text", "json", "raw"]
    # An option's value is not taken for a command: `-a invoke` stays within `logs`.
    assert "--follow" in bash_complete(bash_script, "logs", "-a", "invoke", "--f")
    assert bash_complete(bash_script, "completion", "") == ["bash", "zsh", "fish"]


def test_zsh_script_is_valid_and_offers_commands(tmp_path: Path) -> None:
    script = completion_script("zsh", tmp_path)
    assert script.read_text().startswith("#compdef agentcore\n")
    assert subprocess.run(["zsh", "-n", str(script)], timeout=30).returncode == 0
    # The completion system's builtins replaced by ones that print what they are given.
    program = f"""
        compdef() {{ print "compdef $*" }}
        _describe() {{ print -l -- "${{(@P)${{@[-1]}}}}" }}
        compadd() {{ shift; print -l -- "$@" }}
        _files() {{ print FILES }}
        source '{script}'
        words=(agentcore server st); CURRENT=3; _agentcore
        print -r -- ---
        words=(agentcore invoke --output ''); CURRENT=4; _agentcore
    """
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    loaded, rest = done.stdout.split("\n", 1)
    assert loaded == "compdef _agentcore agentcore"
    subcommands, values = rest.split("---\n")
    assert {line.split(":")[0] for line in subcommands.splitlines()} >= {"start", "stop", "status"}
    assert values.split() == ["text", "json", "raw"]


def test_fish_script_completes_commands_and_options(tmp_path: Path) -> None:
    script = completion_script("fish", tmp_path)
    program = (
        f"source '{script}'; complete -C 'agentcore dep'; echo ---; complete -C 'agentcore server keys '; "
        "echo ---; complete -C 'agentcore invoke --output '"
    )
    done = subprocess.run(["fish", "--no-config", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    commands, keys, values = (
        [line.split("\t")[0] for line in part.splitlines() if line] for part in done.stdout.split("---\n")
    )
    assert commands == ["deploy"]
    assert keys == ["create", "list", "revoke"]
    assert sorted(values) == ["json", "raw", "text"]


def test_an_unknown_shell_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "completion", "tcsh"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "invalid choice" in done.stderr
