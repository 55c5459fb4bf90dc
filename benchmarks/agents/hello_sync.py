"""Hello, as a plain function: the same file runs on our SDK and on the reference."""

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"message": f"Hello, {payload.get('name', 'world')}!"}
