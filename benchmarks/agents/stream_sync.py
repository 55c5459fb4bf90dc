"""A sync generator yielding `count` small frames as fast as it can."""

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    for i in range(int(payload.get("count", 1000))):
        yield {"i": i, "token": "word"}
