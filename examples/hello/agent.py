"""The smallest agent: a greeting for `payload["name"]` (or `payload["prompt"]`).

Run:     python agent.py                      # serves http://127.0.0.1:8080 ($PORT overrides)
Invoke:  curl -s http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' -d '{"name": "Ada"}'
         → {"message": "Hello, Ada!"}
"""

import os
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload: Any) -> dict[str, str]:
    name = "world"
    if isinstance(payload, dict):
        name = payload.get("name") or payload.get("prompt") or name
    return {"message": f"Hello, {name}!"}


if __name__ == "__main__":
    # Passing the port explicitly keeps this file runnable on Amazon's SDK as well.
    app.run(port=int(os.environ.get("PORT", "8080")))
