"""Small aiohttp helpers shared by the OAuth and resource clients."""

from __future__ import annotations

import aiohttp

from ._errors import ResponseDecodeError

__all__ = ["read_limited"]


async def read_limited(response: aiohttp.ClientResponse, limit: int, *, what: str) -> bytes:
    """Read the whole body, refusing (without buffering it) one larger than ``limit`` bytes."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise ResponseDecodeError(f"{what} body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ResponseDecodeError(f"{what} body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
