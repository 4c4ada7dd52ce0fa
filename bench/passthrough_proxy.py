"""A bare pass-through proxy: the control hop of bench_gateway.py.

It runs on the same stack as the gateway (uvicorn with uvloop and httptools, and the
gateway's pooled upstream client, kakin.gateway.client) but does nothing else: no key, no
parsing, no pricing, no ledger.
Measured next to the gateway, it splits the gateway's overhead into what any Python hop
costs on this stack and what kakin's own work adds.

    python bench/passthrough_proxy.py --port 9000 --upstream http://127.0.0.1:8788
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

import uvicorn

from kakin.gateway.client import UpstreamClient

FORWARDED = (b"content-type", b"x-kakin-simulate")


def create_app(upstream: str) -> Any:
    state: dict[str, UpstreamClient] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["session"] = UpstreamClient(timeout_seconds=600)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["session"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in FORWARDED}
        response = await state["session"].request(scope["method"], upstream + scope["path"], body, headers)
        try:
            content_type = response.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", content_type)],
                }
            )
            async for chunk in response:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8788")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
