"""One worker of ``benchmarks.governor``: read pages of one organisation, log every response."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from actionstep_async import (
    AiohttpTransport,
    AsyncResourceClient,
    Environment,
    OAuthClient,
    Token,
    TokenManager,
)
from actionstep_async._governor import Governor
from actionstep_async._transport import Request, Response

PAGE_SIZE = 10


class Recording:
    """A transport that notes (time, status) of every response."""

    def __init__(self, inner: AiohttpTransport) -> None:
        self.inner = inner
        self.events: list[tuple[float, int]] = []
        self.latencies: list[float] = []

    async def send(self, request: Request, /) -> Response:
        sent = time.time()
        response = await self.inner.send(request)
        self.events.append((time.time(), response.status))
        self.latencies.append(time.time() - sent)
        return response


async def main(spec: dict[str, Any]) -> None:
    raw = spec["token"]
    token = Token(
        access_token=raw["access_token"],
        refresh_token=raw["refresh_token"],
        expires_at=raw["expires_at"],
        issued_at=raw["issued_at"],
        api_endpoint=raw["api_endpoint"],
        orgkey=raw["orgkey"],
        scopes=tuple(raw["scopes"]),
    )
    base = raw["api_endpoint"].removesuffix("/api/")
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=Environment.local(base),
    )
    redis = None
    governor = None
    if spec["prefix"]:
        from redis.asyncio import Redis

        from actionstep_async.stores.redis_budget import RedisRateBudget

        redis = Redis()
        governor = Governor("org", shared=RedisRateBudget(redis, prefix=spec["prefix"]))
    transport = Recording(AiohttpTransport())
    async with TokenManager(oauth) as manager:
        await manager.save("org", token)
        client = AsyncResourceClient(manager, "org", transport=transport, governor=governor)
        # Ready: tell the parent, which answers with the common start time once all are.
        print("ready", flush=True)
        go = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, go - time.time()))
        read = 0
        async for _ in client.iterate("actions", page_size=PAGE_SIZE, concurrency=4):
            read += 1
            if read >= spec["pages"] * PAGE_SIZE:
                break
    await transport.inner.aclose()
    shared_state: dict[str, str] = {}
    if redis is not None:
        raw_state = await redis.hgetall(f"{spec['prefix']}rate:{{org}}")
        shared_state = {_text(k): _text(v) for k, v in raw_state.items()}
        await redis.aclose()
    state = client.governor.state
    document = {
        "events": transport.events,
        "latencies": transport.latencies,
        "read": read,
        "base": state.base,
        "gen": state.generation,
        "shared": shared_state,
    }
    await asyncio.to_thread(_write, spec["out"], document)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _write(path: str, document: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(document, handle)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
