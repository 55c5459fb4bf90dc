"""`agentcore create`: a new agent project from a template, ready to configure and deploy.

Each template is an `agent.py` plus the files every project wants: requirements.txt, README.md,
.gitignore and .dockerignore. `__NAME__` in them is replaced by the agent's name.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from .errors import CliError
from .project import check_name

_BASIC = '''"""__NAME__: an AgentCore agent that answers each JSON request with one JSON reply."""

from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    # A plain function runs in a thread pool: blocking calls (a model client, a database) are fine.
    prompt = str(payload.get("prompt", "hello"))
    return {"result": f"You said: {prompt}", "words": len(prompt.split()), "session": context.session_id}


if __name__ == "__main__":
    app.run()
'''

_STREAMING = '''"""__NAME__: an AgentCore agent that streams its answer as Server-Sent Events."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    # Each yielded value goes out at once as one `data: {...}` frame.
    words = str(payload.get("prompt", "hello from a streaming agent")).split()
    for word in words:
        await asyncio.sleep(0.05)  # stands in for waiting on a model's next token
        yield {"token": word}
    yield {"done": True, "tokens": len(words)}


if __name__ == "__main__":
    app.run()
'''

_WEBSOCKET = '''"""__NAME__: an AgentCore agent that chats over a WebSocket on /ws (and answers HTTP)."""

from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from starlette.websockets import WebSocket

app = BedrockAgentCoreApp()


@app.websocket
async def chat(websocket: WebSocket, context: RequestContext) -> None:
    await websocket.accept()
    # Each JSON message {"prompt": "..."} is answered word by word, then {"done": true}.
    # iter_json() ends quietly when the client disconnects.
    async for message in websocket.iter_json():
        prompt = str(message.get("prompt", "") if isinstance(message, dict) else message)
        for word in prompt.split():
            await websocket.send_json({"token": word})
        await websocket.send_json({"done": True, "session": context.session_id})


@app.entrypoint
def invoke(payload: dict[str, Any]) -> dict[str, Any]:
    return {"result": f"You said: {payload.get('prompt', '')}", "hint": "connect to /ws to chat"}


if __name__ == "__main__":
    app.run()
'''

_STRANDS = '''"""__NAME__: a Strands agent (strands-agents) that streams its events as Server-Sent Events.

It runs as generated with no network and no credentials: `ScriptedModel` stands in for a real
model, calls the `word_count` tool once, then answers from the tool's result. For a real model,
replace it, e.g. `from strands.models import BedrockModel` and `model = BedrockModel(model_id=...)`.
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp
from strands import Agent, tool
from strands.models import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


class ScriptedModel(Model):
    """A stand-in model: asks for `word_count` on the user's text, then reports the count."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def structured_output(
        self, output_model: Any, prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError("ScriptedModel has no structured output")
        yield {}  # makes this an async generator, as the interface wants

    async def stream(
        self, messages: Messages, tool_specs: Any = None, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        last = messages[-1]["content"]
        results = [block["toolResult"] for block in last if "toolResult" in block]
        yield {"messageStart": {"role": "assistant"}}
        if not results:
            text = " ".join(block.get("text", "") for block in last)
            yield {
                "contentBlockStart": {"start": {"toolUse": {"toolUseId": "count-1", "name": "word_count"}}}
            }
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps({"text": text})}}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
            return
        count = results[0]["content"][0].get("text", "?")
        for word in f"Your message has {count} words.".split(" "):
            yield {"contentBlockDelta": {"delta": {"text": word + " "}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


app = BedrockAgentCoreApp()
# One agent per process: the runtime gives each session its own worker, so the conversation
# carries across one session's invocations.
agent = Agent(model=ScriptedModel(), tools=[word_count], callback_handler=None)


@app.entrypoint
async def invoke(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    # Strands' events hold live objects (the agent, spans); pass on the JSON-friendly parts.
    announced: set[str] = set()
    async for event in agent.stream_async(str(payload.get("prompt", "hello"))):
        if "data" in event:
            yield {"data": event["data"]}
        elif "current_tool_use" in event:
            tool_use = event["current_tool_use"]
            if tool_use.get("toolUseId") not in announced:  # once per call, not per input delta
                announced.add(tool_use.get("toolUseId"))
                yield {"tool_use": tool_use.get("name")}
        elif "result" in event:
            yield {"stop_reason": str(event["result"].stop_reason)}


if __name__ == "__main__":
    app.run()
'''

_REQUIREMENTS = """# What agent.py needs beyond the agent SDK, which open-agentcore provides to every agent.
# (Amazon's `bedrock-agentcore` may be listed instead: then that SDK serves the agent.)
"""

_README = """# __NAME__

An AgentCore agent made with `agentcore create --template __TEMPLATE__`.

| file | what |
|---|---|
| `agent.py` | the agent: edit it |
| `requirements.txt` | packages it needs (installed into its own environment on deploy) |
| `.dockerignore`, `.gitignore` | what deploys and version control leave out |

## Run it

    agentcore configure --entrypoint agent.py --name __NAME__ --non-interactive
    agentcore dev                    # on http://127.0.0.1:8080, reloading on every save
    agentcore deploy --local         # or as a background process; `agentcore destroy --local` stops it
    agentcore deploy                 # or on the runtime server (`agentcore server start` first)

## Call it

__CALL__
"""

_HTTP_CALL = """    agentcore invoke '{"prompt": "hello there"}'
    curl -sN http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \\
         -d '{"prompt": "hello there"}'"""

_WEBSOCKET_CALL = """    python -m websockets ws://127.0.0.1:8080/ws    # then type: {"prompt": "hello there"}
    agentcore invoke '{"prompt": "hello there"}'     # the plain HTTP entrypoint"""

_GITIGNORE = """.venv/
__pycache__/
*.py[cod]
.env
# deployment state of this machine (the .bedrock_agentcore.yaml config is worth committing)
.bedrock_agentcore/
"""

_DOCKERIGNORE = """.git/
.venv/
venv/
__pycache__/
*.py[cod]
.env
.bedrock_agentcore/
tests/
"""

TEMPLATES: dict[str, tuple[str, str, str]] = {
    # name: (agent.py, extra requirements, how to call it)
    "basic": (_BASIC, "", _HTTP_CALL),
    "streaming": (_STREAMING, "", _HTTP_CALL),
    "websocket": (_WEBSOCKET, "", _WEBSOCKET_CALL),
    "strands": (_STRANDS, "strands-agents>=1.0,<2\n", _HTTP_CALL),
}


def add_commands(commands: Any) -> None:
    """Register `create` on the top-level parser."""
    create = commands.add_parser(
        "create",
        help="start a new agent project from a template",
        description="Write a new project directory (agent.py, requirements.txt, README.md, .gitignore, "
        ".dockerignore) that configures and deploys as generated. Templates: basic (JSON in, JSON "
        "out), streaming (Server-Sent Events), websocket (/ws), strands (a Strands agent with a "
        "scripted model: runs without network).",
        epilog="example: agentcore create --template streaming my_agent && cd my_agent",
    )
    create.add_argument("directory", nargs="?", type=Path, help="where to write it (default: ./NAME)")
    create.add_argument("--template", "-t", choices=sorted(TEMPLATES), default="basic", help="default: basic")
    create.add_argument("--name", "-n", help="agent name (default: from the directory, else my_agent)")
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    name = check_name(args.name or (_name_from(args.directory) if args.directory else "my_agent"))
    directory: Path = args.directory or Path(name)
    files = write_project(directory, args.template, name)
    print(f"created {directory}/ from the {args.template!r} template: {', '.join(files)}")
    print("next:")
    print(f"  cd {directory}")
    print(f"  agentcore configure --entrypoint agent.py --name {name} --non-interactive")
    print("  agentcore dev                 # hot reload on http://127.0.0.1:8080")
    print("  agentcore deploy --local      # or: agentcore deploy (to the runtime server)")
    print('  agentcore invoke \'{"prompt": "hello"}\'')
    return 0


def write_project(directory: Path, template: str, name: str) -> list[str]:
    """Write the template's files into `directory` (new, or empty); the names written."""
    if template not in TEMPLATES:
        raise CliError(f"no template {template!r} (choose from {', '.join(sorted(TEMPLATES))})")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CliError(f"{directory} already exists and is not empty: choose a new directory")
    agent, requirements, call = TEMPLATES[template]
    readme = _README.replace("__CALL__", call).replace("__TEMPLATE__", template)
    files = {
        "agent.py": agent,
        "requirements.txt": _REQUIREMENTS + requirements,
        "README.md": readme,
        ".gitignore": _GITIGNORE,
        ".dockerignore": _DOCKERIGNORE,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (directory / file_name).write_text(text.replace("__NAME__", name))
    return list(files)


def _name_from(directory: Path) -> str:
    cleaned = re.sub(r"\W", "_", directory.resolve().name).lstrip("_0123456789")[:48]
    return cleaned or "my_agent"


__all__ = ["TEMPLATES", "add_commands", "write_project"]
