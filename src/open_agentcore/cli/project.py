"""The project: `.bedrock_agentcore.yaml` (what the user configured) and `.bedrock_agentcore/`
(what deploying learned: runtime ids, the last session, the last deploy mode).

The YAML holds only choices a person makes and may commit; paths in it are relative to the file,
so a project can move. Deployment state is machine-written JSON kept apart, one file per agent.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import CliError

CONFIG_FILE = ".bedrock_agentcore.yaml"
STATE_DIR = ".bedrock_agentcore"
NAME_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")
PROTOCOLS = ("HTTP", "MCP", "A2A", "AGUI")


@dataclass
class AgentConfig:
    """One agent as `configure` recorded it."""

    name: str
    entrypoint: str
    requirements_file: str | None = None
    protocol: str = "HTTP"
    environment: dict[str, str] = field(default_factory=dict)
    authorizer_config: dict[str, Any] | None = None
    request_header_allowlist: list[str] = field(default_factory=list)
    idle_timeout: int | None = None
    max_lifetime: int | None = None

    @classmethod
    def from_yaml(cls, name: str, data: Any, source: Path) -> AgentConfig:
        if not isinstance(data, dict) or not isinstance(data.get("entrypoint"), str):
            raise CliError(f"{source}: agent {name!r} needs an `entrypoint`")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CliError(f"{source}: agent {name!r} has unknown keys: {', '.join(unknown)}")
        return cls(**{**data, "name": name})

    def to_yaml(self) -> dict[str, Any]:
        data = asdict(self)
        del data["name"]
        return {key: value for key, value in data.items() if value not in (None, [], {})}


@dataclass
class AgentState:
    """What deploying an agent left behind; rewritten by every deploy, invoke and destroy."""

    runtime_id: str | None = None
    runtime_arn: str | None = None
    endpoint_url: str | None = None
    artifact_key: str | None = None
    session_id: str | None = None
    request_id: str | None = None  # the last HTTP invocation's, sent with it: `agentcore cancel`'s default
    stopped_session_id: str | None = None  # the last one `stop-session` stopped, to say so again
    mode: str | None = None  # "server" or "local": where a plain `invoke` goes
    local_port: int | None = None
    local_pid: int | None = None
    dev_port: int | None = None  # while `agentcore dev` serves the agent: `invoke` goes there
    dev_pid: int | None = None
    # The last streamed answer from the runtime server, as far as it was printed (`invoke --resume`).
    stream_session_id: str | None = None
    stream_event_id: str | None = None


class Project:
    """The agents configured in one directory, and their deployment state."""

    def __init__(self, root: Path, agents: dict[str, AgentConfig], default_agent: str | None) -> None:
        self.root = root
        self.agents = agents
        self.default_agent = default_agent

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @classmethod
    def load(cls, root: Path | None = None) -> Project:
        """The project in `root` (default: the current directory); empty when not configured yet."""
        root = (root or Path.cwd()).resolve()
        path = root / CONFIG_FILE
        if not path.exists():
            return cls(root, {}, None)
        import yaml  # here, not at the top: `agentcore --help` never reads a project

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise CliError(f"{path} is not valid YAML{where}") from None
        if not isinstance(data, dict) or not isinstance(data.get("agents", {}), dict):
            raise CliError(f"{path} must be a mapping with `default_agent` and `agents`")
        agents = {
            str(name): AgentConfig.from_yaml(str(name), body, path)
            for name, body in (data.get("agents") or {}).items()
        }
        default = data.get("default_agent")
        return cls(root, agents, str(default) if default else None)

    def save(self) -> None:
        import yaml

        data = {
            "default_agent": self.default_agent,
            "agents": {name: agent.to_yaml() for name, agent in sorted(self.agents.items())},
        }
        text = "# open-agentcore project: written by `agentcore configure`, safe to edit and commit.\n"
        text += yaml.safe_dump(data, sort_keys=False)
        _write_atomically(self.config_path, text)

    def agent(self, name: str | None = None) -> AgentConfig:
        """The named agent, else the default one; a clear error when there is none."""
        if not self.agents:
            hint = "run `agentcore configure --entrypoint agent.py` first"
            raise CliError(f"no agent is configured in {self.root}: {hint}")
        chosen = name or self.default_agent or (next(iter(self.agents)) if len(self.agents) == 1 else None)
        if chosen is None:
            raise CliError(f"several agents are configured ({', '.join(self.agents)}): pass --agent NAME")
        if chosen not in self.agents:
            raise CliError(f"no agent named {chosen!r} here (configured: {', '.join(sorted(self.agents))})")
        return self.agents[chosen]

    def agent_option(self, name: str) -> str:
        """` --agent NAME` for a command hint whenever several agents are configured (a bare
        command could mean another one, now or after `set-default`), else nothing."""
        return f" --agent {name}" if len(self.agents) > 1 else ""

    def path_of(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    # Deployment state ------------------------------------------------------------------------

    def state_dir(self, agent: str) -> Path:
        return self.root / STATE_DIR / agent

    def state(self, agent: str) -> AgentState:
        path = self.state_dir(agent) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return AgentState()
        except ValueError:
            raise CliError(f"{path} is damaged; delete it and deploy again") from None
        known = {f.name for f in fields(AgentState)}
        return AgentState(**{key: value for key, value in data.items() if key in known})

    def save_state(self, agent: str, state: AgentState) -> None:
        directory = self.state_dir(agent)
        directory.mkdir(parents=True, exist_ok=True)
        ignore = self.root / STATE_DIR / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# deployment state of this machine: not for version control\n*\n")
        _write_atomically(directory / "state.json", json.dumps(asdict(state), indent=2) + "\n")

    def forget(self, agent: str) -> None:
        """Remove an agent from the config and its state."""
        self.agents.pop(agent, None)
        if self.default_agent == agent:
            self.default_agent = next(iter(sorted(self.agents)), None)
        state = self.state_dir(agent) / "state.json"
        state.unlink(missing_ok=True)
        self.save()


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise CliError(
            f"agent name {name!r} is not allowed: start with a letter, then letters, digits or _ "
            "(at most 48 characters)"
        )
    return name


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


__all__ = ["CONFIG_FILE", "PROTOCOLS", "STATE_DIR", "AgentConfig", "AgentState", "Project", "check_name"]
