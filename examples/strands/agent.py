"""strands_agent: a Strands agent (strands-agents) that streams its events as Server-Sent Events.

It runs as generated with no network and no credentials: `ScriptedModel` stands in for a real
model, calls the `word_count` tool once, then answers from the tool's result. For a real model,
replace it, e.g. `from strands.models import BedrockModel` and `model = BedrockModel(model_id=...)`.
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from strands.models import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent

from bedrock_agentcore import BedrockAgentCoreApp
from strands import Agent, tool


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
