"""The receiver without HTTP: ``deliver()`` straight into it, its bounds and its gate."""

from __future__ import annotations

import asyncio

import pytest

from actionstep_async.webhooks import WebhookEvent, WebhookReceiver

from .conftest import SECRET
from .test_receiver_concurrency import _body


async def test_beyond_max_pending_events_are_dropped_and_the_watermark_pinned() -> None:
    async def handler(event: WebhookEvent) -> None:
        pass

    receiver = WebhookReceiver(handler, secret=SECRET, max_pending=2)
    accepted = [receiver.deliver(_body(n, 1)) for n in (1, 2, 3)]  # not started: all wait
    assert [event is not None for event in accepted] == [True, True, False]
    assert receiver.stats.dropped == 1
    assert receiver.last_event_at("participants") is not None
    async with receiver:
        async with asyncio.timeout(30):
            await receiver.wait_idle()
    assert receiver.stats.handled == 2
    assert receiver.last_event_at("participants") is not None  # still pinned for reconcile


async def test_an_event_out_of_attempts_releases_the_ones_behind_it() -> None:
    handled: list[int] = []

    async def handler(event: WebhookEvent) -> None:
        if event.trigger_count == 1:
            raise ValueError("always")
        handled.append(event.trigger_count)

    receiver = WebhookReceiver(handler, secret=SECRET, max_attempts=2, retry_base=0.01)
    async with receiver:
        for count in (1, 2, 3):
            receiver.deliver(_body(5, count))
        async with asyncio.timeout(30):
            await receiver.wait_idle()
        assert handled == [2, 3]
        (failed,) = receiver.failed
        assert failed.attempts == 2
        assert receiver.discard_failed() == 1
        assert receiver.failed == ()


async def test_queue_overflow_parks_events_and_retries_them() -> None:
    handled: list[int] = []
    gate = asyncio.Event()

    async def handler(event: WebhookEvent) -> None:
        await gate.wait()
        handled.append(int(event.id))

    receiver = WebhookReceiver(handler, secret=SECRET, workers=1, queue_size=2, retry_base=0.01)
    async with receiver:
        for n in range(1, 8):
            receiver.deliver(_body(n, 1))
        assert receiver.stats.overflowed > 0
        gate.set()
        async with asyncio.timeout(30):
            await receiver.wait_idle()
    assert sorted(handled) == list(range(1, 8))


@pytest.mark.parametrize("bad", ["workers", "queue_size", "max_attempts", "max_pending"])
def test_nonsense_bounds_are_refused(bad: str) -> None:
    async def handler(event: WebhookEvent) -> None:
        pass

    bounds = {"workers": 1, "queue_size": 1, "max_attempts": 1, "max_pending": 1, bad: 0}
    with pytest.raises(ValueError, match=">= 1"):
        WebhookReceiver(
            handler,
            secret=SECRET,
            workers=bounds["workers"],
            queue_size=bounds["queue_size"],
            max_attempts=bounds["max_attempts"],
            max_pending=bounds["max_pending"],
        )


def test_repr_shows_counts_not_secrets() -> None:
    async def handler(event: WebhookEvent) -> None:
        pass

    receiver = WebhookReceiver(handler, secret=SECRET)
    assert SECRET.reveal() not in repr(receiver)
    assert "pending=0" in repr(receiver)


async def test_several_secrets_are_accepted_while_rotating() -> None:
    from aiohttp.test_utils import make_mocked_request

    from actionstep_async import HookSecret

    async def handler(event: WebhookEvent) -> None:
        pass

    new = HookSecret.generate()
    receiver = WebhookReceiver(handler, secret=[new, SECRET])
    for secret, status in ((new, 200), (SECRET, 200), (HookSecret.generate(), 404)):
        path = secret.sign("http://h/hooks").split("http://h", 1)[1]
        response = await receiver.handle(make_mocked_request("GET", path))
        assert response.status == status
    with pytest.raises(ValueError, match="at least one"):
        WebhookReceiver(handler, secret=[])
