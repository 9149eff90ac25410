"""The receiver under concurrent load over loopback: order per record, exactly once, always 200."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict

import aiohttp

from actionstep_async import AsyncResourceClient
from actionstep_async.testing import issued_secrets
from actionstep_async.testing._hooks import payload
from actionstep_async.webhooks import WebhookEvent, WebhookReceiver

from .conftest import SECRET, Served

RECORDS = 500
PER_RECORD = 4


def _body(record: int, count: int) -> bytes:
    hook = {"id": record, "targetUrl": "http://x/hooks", "triggeredCount": count}
    document = payload(
        "participants",
        {"id": record, "firstName": f"v{count}", "links": {}},
        {},
        hook=hook,
        event="ParticipantUpdated",
    )
    return json.dumps(document).encode()


async def test_many_senders_keep_per_record_order_and_each_event_once() -> None:
    """500 senders post 4 versions of their record each, every delivery twice at once, to a
    handler that sleeps at random: each version handled exactly once,
    in order per record, and every answer is 200."""
    seen: dict[str, list[int]] = defaultdict(list)
    rng = random.Random(7)

    async def handler(event: WebhookEvent) -> None:
        await asyncio.sleep(rng.random() / 1000)
        seen[event.id].append(event.trigger_count)

    receiver = WebhookReceiver(handler, secret=SECRET, workers=8, queue_size=5000)
    served = Served(receiver)
    await served.start()
    url = SECRET.sign(served.url)
    statuses: list[int] = []
    try:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(body: bytes) -> None:
                async with session.post(url, data=body) as response:
                    statuses.append(response.status)

            async def sender(record: int) -> None:
                for count in range(1, PER_RECORD + 1):
                    body = _body(record, count)
                    await asyncio.gather(post(body), post(body))

            await asyncio.gather(*(sender(n) for n in range(1, RECORDS + 1)))
        async with asyncio.timeout(60):
            await receiver.wait_idle()
    finally:
        await served.stop()
    assert set(statuses) == {200}
    assert len(statuses) == 2 * RECORDS * PER_RECORD
    assert receiver.stats.duplicates == RECORDS * PER_RECORD
    assert len(seen) == RECORDS
    assert all(counts == list(range(1, PER_RECORD + 1)) for counts in seen.values())


async def test_hook_tokens_the_fake_sees_are_in_the_leak_scan(
    client: AsyncResourceClient,
) -> None:
    """Every URL token a fake registered is one of the secrets the suite-wide scan looks for."""
    hook = await client.hooks.create("TaskCreated", "https://example.com/h", secret=SECRET)
    token = hook.target_url.split("hook_token=")[1]
    assert token in issued_secrets()
    assert token not in repr(hook)
