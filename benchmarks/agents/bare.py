"""Bare Starlette with the same routes: the floor any agent wrapper is measured against."""

import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def invocations(request: Request) -> Response:
    payload = json.loads(await request.body())
    return JSONResponse({"message": f"Hello, {payload.get('name', 'world')}!"})


async def ping(request: Request) -> Response:
    return JSONResponse({"status": "Healthy", "time_of_last_update": int(time.time())})


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
