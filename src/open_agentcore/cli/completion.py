"""`agentcore completion bash|zsh|fish`: a shell completion script generated from the CLI's parser.

The parser is read once into a tree of commands (subcommands, options, which options take a value
and its choices); each shell's script is that tree written as data plus a small walker that finds
the command path of the words typed so far. A new command or option needs no change here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

SHELLS = ("bash", "zsh", "fish")
ANY_VALUE = "?"  # an option whose value is free text or a path

EXAMPLES = """examples:
  source <(agentcore completion bash)
  agentcore completion bash > ~/.local/share/bash-completion/completions/agentcore
  agentcore completion zsh > ~/.zfunc/_agentcore
  agentcore completion fish > ~/.config/fish/completions/agentcore.fish
"""


def add_commands(commands: Any) -> None:
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a script that completes agentcore's commands, subcommands and options "
        "in your shell. bash: source it from ~/.bashrc, or save it where bash-completion looks. "
        "zsh: save it as _agentcore in a directory on $fpath (before compinit runs). fish: save it "
        "in ~/.config/fish/completions/.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    completion.set_defaults(handler=print_completion)


@dataclass
class Option:
    flags: list[str]
    help: str
    values: str | None  # None: a switch; ANY_VALUE; else the choices, space-separated


@dataclass
class Command:
    """One node of the command tree: `path` is the words that lead to it (() for the top)."""

    path: tuple[str, ...]
    help: str = ""
    children: dict[str, Command] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)  # positional choices: word -> help
    options: list[Option] = field(default_factory=list)

    def walk(self) -> list[Command]:
        return [self, *(node for child in self.children.values() for node in child.walk())]

    def candidates(self) -> dict[str, str]:
        return {**{name: child.help for name, child in self.children.items()}, **self.words}


def print_completion(args: argparse.Namespace) -> int:
    from .main import parser

    print(script(args.shell, parser()), end="")
    return 0


def script(shell: str, top: argparse.ArgumentParser) -> str:
    """The completion script for `shell` of the commands `top` parses."""
    tree = command_tree(top)
    return {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](tree)


def command_tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> Command:
    """Read a parser (argparse keeps its actions in private attributes; there is no public way)."""
    node = Command(path, help)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if name in helps:  # aliases share the parser; complete the main name only
                    node.children[name] = command_tree(sub, (*path, name), helps[name])
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            values = None
            if action.nargs != 0:
                values = " ".join(str(c) for c in action.choices) if action.choices else ANY_VALUE
            node.options.append(Option(list(action.option_strings), _one_line(action.help), values))
        elif action.choices:
            node.words.update({str(choice): _one_line(action.help) for choice in action.choices})
    return node


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("%%", "%")


# bash -----------------------------------------------------------------------------------------

_BASH_WALKER = r"""
_agentcore() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmdpath="" word values i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        _agentcore_values "$cmdpath" "${COMP_WORDS[i-1]}" >/dev/null && continue
        if [[ " $(_agentcore_words "$cmdpath") " == *" $word "* ]]; then
            cmdpath="${cmdpath:+$cmdpath }$word"
        fi
    done
    if [[ COMP_CWORD -gt 1 ]] && values="$(_agentcore_values "$cmdpath" "$prev")"; then
        if [[ "$values" == "?" ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$values" -- "$cur"))
        fi
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_agentcore_options "$cmdpath")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_agentcore_words "$cmdpath")" -- "$cur"))
    fi
}
complete -o default -F _agentcore agentcore
"""


def bash_script(tree: Command) -> str:
    words, options, values = [], [], []
    for node in tree.walk():
        key = " ".join(node.path)
        if node.candidates():
            words.append(f'        "{key}") echo "{" ".join(node.candidates())}" ;;')
        flags = [flag for option in node.options for flag in option.flags]
        options.append(f'        "{key}") echo "{" ".join(flags)}" ;;')
        for option in node.options:
            if option.values is not None:
                keys = "|".join(f'"{key}:{flag}"' for flag in option.flags)
                values.append(f'        {keys}) echo "{option.values}" ;;')
    return (
        "\n".join(
            [
                "# bash completion for agentcore: source <(agentcore completion bash)",
                "_agentcore_words() {",
                '    case "$1" in',
                *words,
                "    esac",
                "}",
                "_agentcore_options() {",
                '    case "$1" in',
                *options,
                "    esac",
                "}",
                "# The values an option takes (? for any text or path); fails for an option that takes none.",
                "_agentcore_values() {",
                '    case "$1:$2" in',
                *values,
                "        *) return 1 ;;",
                "    esac",
                "}",
            ]
        )
        + _BASH_WALKER
    )


# zsh ------------------------------------------------------------------------------------------

_ZSH_WALKER = r"""
_agentcore() {
    local cmdpath="" word i values
    local -a reply names
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        [[ "$word" == -* ]] && continue
        _agentcore_values "$cmdpath" "${words[i-1]}" && continue
        _agentcore_words "$cmdpath"
        names=("${(@)reply%%:*}")
        (( ${names[(Ie)$word]} )) && cmdpath="${cmdpath:+$cmdpath }$word"
    done
    if (( CURRENT > 2 )) && _agentcore_values "$cmdpath" "${words[CURRENT-1]}"; then
        if [[ "$REPLY" == "?" ]]; then
            _files
        else
            compadd -- ${=REPLY}
        fi
    elif [[ "${words[CURRENT]}" == -* ]]; then
        _agentcore_options "$cmdpath"
        _describe -t options 'option' reply
    else
        _agentcore_words "$cmdpath"
        (( ${#reply} )) && _describe -t commands 'command' reply || _files
    fi
}
if [[ "$funcstack[1]" == _agentcore ]]; then
    _agentcore "$@"
else
    compdef _agentcore agentcore
fi
"""


def zsh_script(tree: Command) -> str:
    words, options, values = [], [], []
    for node in tree.walk():
        key = " ".join(node.path)
        if node.candidates():
            items = " ".join(_zsh_item(name, text) for name, text in node.candidates().items())
            words.append(f'        "{key}") reply=({items}) ;;')
        items = " ".join(_zsh_item(flag, option.help) for option in node.options for flag in option.flags)
        options.append(f'        "{key}") reply=({items}) ;;')
        for option in node.options:
            if option.values is not None:
                keys = "|".join(f'"{key}:{flag}"' for flag in option.flags)
                values.append(f"        {keys}) REPLY={_single_quoted(option.values)} ;;")
    return (
        "\n".join(
            [
                "#compdef agentcore",
                "# zsh completion for agentcore: agentcore completion zsh > ~/.zfunc/_agentcore",
                "_agentcore_words() {",
                "    reply=()",
                '    case "$1" in',
                *words,
                "    esac",
                "}",
                "_agentcore_options() {",
                "    reply=()",
                '    case "$1" in',
                *options,
                "    esac",
                "}",
                "_agentcore_values() {",
                '    case "$1:$2" in',
                *values,
                "        *) return 1 ;;",
                "    esac",
                "}",
            ]
        )
        + _ZSH_WALKER
    )


def _zsh_item(name: str, text: str) -> str:
    return _single_quoted(name.replace(":", r"\:") + (":" + text if text else ""))


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# fish -----------------------------------------------------------------------------------------


def fish_script(tree: Command) -> str:
    lines = [
        "# fish completion for agentcore:",
        "#   agentcore completion fish > ~/.config/fish/completions/agentcore.fish",
        "complete -c agentcore -f",
    ]
    for node in tree.walk():
        condition = _fish_condition(node)
        for name, text in node.candidates().items():
            lines.append(
                f"complete -c agentcore -n {_fish_quoted(condition)} -a {_fish_quoted(name)}"
                f" -d {_fish_quoted(text)}"
            )
        for option in node.options:
            flags = " ".join(
                f"-l {_fish_quoted(flag[2:])}" if flag.startswith("--") else f"-s {_fish_quoted(flag[1:])}"
                for flag in option.flags
            )
            if option.values is None:
                takes = ""
            elif option.values == ANY_VALUE:
                takes = " -r -F"
            else:
                takes = f" -x -a {_fish_quoted(option.values)}"
            described = f"{flags}{takes} -d {_fish_quoted(option.help)}"
            lines.append(f"complete -c agentcore -n {_fish_quoted(condition)} {described}")
    return "\n".join(lines) + "\n"


def _fish_condition(node: Command) -> str:
    if not node.path:
        return "__fish_use_subcommand"
    seen = [f"__fish_seen_subcommand_from {name}" for name in node.path]
    if node.children:
        seen.append("not __fish_seen_subcommand_from " + " ".join(node.children))
    return "; and ".join(seen)


def _fish_quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


__all__ = ["SHELLS", "Command", "add_commands", "command_tree", "script"]
