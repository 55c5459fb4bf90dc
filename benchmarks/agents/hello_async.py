"""Hello, as an async function."""

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload):
    return {"message": f"Hello, {payload.get('name', 'world')}!"}
