"""The fake's REST hooks: ``resthooks`` records that fire when records change, as Actionstep's do.

A write through the fake's API that matches an Active subscription queues one delivery: a POST
of the JSON:API 1.0 envelope to the hook's target URL. Deliveries go out one at a time in the
order the writes happened. Any answer other than 200 disables the hook (Actionstep's rule); so
does a refused connection unless ``disable_on_connection_error`` is False (Actionstep's
behaviour there is undocumented; assuming the worst makes tests of recovery meaningful).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp
import attrs
from aiohttp import web

from .._hook_model import EVENT_RESOURCES, HOOK_EVENTS, EventName
from .._hook_tokens import redact_target, split_target
from ._auth import remember_secret
from ._data import now_timestamp
from ._rest import Reply, RestApi
from ._wire import dumps, loads

__all__ = ["FakeHooks", "HookCounters", "add_hook_routes", "events_for", "payload"]

log = logging.getLogger("actionstep_async.testing.hooks")

RESOURCE: Final = "resthooks"
_VERBS: Final = {
    "Created": "created",
    "Added": "created",
    "Updated": "updated",
    "Deleted": "deleted",
}


def _kind_of(event: str) -> str | None:
    return next((kind for verb, kind in _VERBS.items() if event.endswith(verb)), None)


def events_for(
    resource: str, kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[EventName]:
    """The events one write fires: ``kind`` is created, updated or deleted."""
    fired: list[EventName] = [
        event
        for event in HOOK_EVENTS
        if EVENT_RESOURCES[event] == resource and _kind_of(event) == kind
    ]
    step = (after.get("links") or {}).get("step")
    if resource == "actions" and kind == "updated" and before is not None:
        fired.extend(["StepChanged"] if (before.get("links") or {}).get("step") != step else [])
    return fired


def _relationship(value: object, target: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return {"data": [{"type": target, "id": str(item)} for item in value]}
    return {"data": {"type": target, "id": str(value)}}


def payload(
    resource: str,
    record: Mapping[str, Any],
    link_types: Mapping[str, str],
    *,
    hook: Mapping[str, Any],
    event: str,
) -> dict[str, Any]:
    """The body Actionstep POSTs for one event (survey 10.4)."""
    links = record.get("links") or {}
    return {
        "jsonapi": {"version": "1.0"},
        "data": {
            "type": resource,
            "id": str(record["id"]),
            "attributes": {k: v for k, v in record.items() if k not in ("id", "links")},
            "relationships": {
                name: _relationship(value, link_types.get(name, name))
                for name, value in links.items()
            },
        },
        "meta": {
            "paging": {resource: {"recordCount": 1, "pageCount": 1}},
            "debug": {
                "server": "fake-actionstep",
                "resthook": {
                    "id": str(hook["id"]),
                    "target": hook["targetUrl"],
                    "trigger_count": hook["triggeredCount"],
                    "event_name": event,
                    "resource_type": resource,
                    "resource_id": str(record["id"]),
                },
            },
        },
    }


@attrs.define
class HookCounters:
    """``deliveries`` by ``(event, status)`` (status 0: no connection); ``disabled`` hooks."""

    deliveries: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    disabled: int = 0
    queued: int = 0

    def delivered(self, event: str | None = None) -> int:
        """Deliveries answered 200 (for one event, or all)."""
        return sum(
            n for (name, status), n in self.deliveries.items()
            if status == 200 and event in (None, name)
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveries": {f"{e} {s}": n for (e, s), n in sorted(self.deliveries.items())},
            "delivered": self.delivered(),
            "disabled": self.disabled,
            "queued": self.queued,
        }


@attrs.frozen
class _Delivery:
    hook_id: int
    event: str
    resource: str
    record: Mapping[str, Any]


class FakeHooks:
    """REST hook subscriptions and deliveries of one FakeActionstep (``fake.hooks``)."""

    def __init__(self, rest: RestApi) -> None:
        self.rest = rest
        self.counters = HookCounters()
        self.repeat = 1
        """Send every delivery this many times (Actionstep may redeliver; test your dedupe)."""
        self.disable_on_connection_error = True
        self.timeout = 10.0
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- the resthooks resource -----------------------------------------------------------

    def prepare(self, method: str, body: object) -> Mapping[str, Any] | str:
        """A resthooks write body reduced to what a client may write, or why it is refused.

        The server's own fields (status, counts) are set by :meth:`after` once it is stored.
        """
        if not isinstance(body, Mapping) or not isinstance(body.get(RESOURCE), Mapping | list):
            return body if isinstance(body, Mapping) else "The body must be an object"
        inner = body[RESOURCE]
        items = inner if isinstance(inner, list) else [inner]
        prepared = []
        for item in items:
            if not isinstance(item, Mapping):
                return f"'{RESOURCE}' must be an object or a list of objects"
            # Actionstep's answer to an unknown event name is undocumented: the fake stores it,
            # and such a hook simply never fires.
            event, target = item.get("eventName"), item.get("targetUrl")
            if not isinstance(event, str) or not isinstance(target, str):
                return "eventName and targetUrl are required strings"
            token = split_target(target)[1]
            if token:
                remember_secret(token)  # so the suite's leak scan looks for it
            prepared.append({"eventName": event, "targetUrl": target})
        return {RESOURCE: prepared if isinstance(inner, list) else prepared[0]}

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every resthooks record (live references: do not modify)."""
        return list(self.rest.table(RESOURCE).records())

    def summary(self) -> list[dict[str, Any]]:
        """The subscriptions with their target URLs redacted (safe to print)."""
        return [
            {**hook, "targetUrl": redact_target(str(hook["targetUrl"]))}
            for hook in self.subscriptions()
        ]

    def disable(self, hook_id: int) -> None:
        """Disable one hook, as Actionstep does after a non-200 answer."""
        table = self.rest.table(RESOURCE)
        if table.get(hook_id) is not None:
            table.update(hook_id, {"status": "Disabled"})
            self.counters.disabled += 1

    # -- observing writes -----------------------------------------------------------------

    def before(self, resource: str, method: str, ids: Sequence[str] | None) -> list[dict[str, Any]]:
        """The records a PUT or DELETE is about to change (only when someone listens)."""
        if resource == RESOURCE or method not in ("PUT", "DELETE") or not ids:
            return []
        if not any(hook.get("status") == "Active" for hook in self.subscriptions()):
            return []
        return [dict(record) for record in self.rest.lookup(resource, ids)]

    def after(
        self, resource: str, method: str, before: list[dict[str, Any]], reply: Reply
    ) -> Reply:
        """Queue the deliveries a successful write fires; returns ``reply``."""
        if reply.status >= 300:
            return reply
        if resource != RESOURCE:
            self._fire(resource, method, before, reply)
        elif method == "POST":
            self._activate(reply)
        return reply

    @staticmethod
    def _activate(reply: Reply) -> None:
        # The stored record and the reply share the dict: a new hook is Active, never fired.
        written = (reply.document or {}).get(RESOURCE)
        for hook in written if isinstance(written, list) else [written] if written else []:
            hook.update(status="Active", triggeredCount=0, triggeredLastTimestamp=None)

    def _fire(self, resource: str, method: str, before: list[dict[str, Any]], reply: Reply) -> None:
        changes: list[tuple[dict[str, Any] | None, dict[str, Any], str]]
        if method == "DELETE":
            changes = [(None, record, "deleted") for record in before]
        else:
            document = reply.document or {}
            written = document.get(resource)
            records = written if isinstance(written, list) else [written] if written else []
            old = {str(record.get("id")): record for record in before}
            kind = "created" if method == "POST" else "updated"
            changes = [(old.get(str(r.get("id"))), r, kind) for r in records]
        hooks = [hook for hook in self.subscriptions() if hook.get("status") == "Active"]
        for previous, record, kind in changes:
            for event in events_for(resource, kind, previous, record):
                for hook in hooks:
                    if hook.get("eventName") == event:
                        self._put(_Delivery(int(hook["id"]), event, resource, dict(record)))

    def _put(self, delivery: _Delivery) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send_all(self._queue))
        self.counters.queued += 1
        self._queue.put_nowait(delivery)

    # -- delivering -------------------------------------------------------------------------

    async def _send_all(self, queue: asyncio.Queue[_Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._send(delivery)
            finally:
                queue.task_done()

    async def _send(self, delivery: _Delivery) -> None:
        table = self.rest.table(RESOURCE)
        hook = table.get(delivery.hook_id)
        if hook is None or hook.get("status") != "Active":
            return  # disabled or deleted since the write: Actionstep would not send it
        hook = (
            table.update(
                delivery.hook_id,
                {
                    "triggeredCount": int(hook.get("triggeredCount") or 0) + 1,
                    "triggeredLastTimestamp": now_timestamp(),
                },
            )
            or hook
        )
        schema = self.rest.schema(delivery.resource)
        body = payload(
            delivery.resource, delivery.record, schema.link_types, hook=hook, event=delivery.event
        )
        for _ in range(max(1, self.repeat)):
            status = await self._post(str(hook["targetUrl"]), body)
            self.counters.deliveries[(delivery.event, status)] += 1
            if status != 200 and (status != 0 or self.disable_on_connection_error):
                self.disable(delivery.hook_id)
                return

    async def _post(self, url: str, body: Mapping[str, Any]) -> int:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(url, json=body) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("REST hook delivery failed: %s", type(exc).__name__)
            return 0

    async def drain(self) -> None:
        """Wait until every queued delivery has been sent (bound it with asyncio.timeout)."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._queue = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        self.counters = HookCounters()
        self.repeat = 1


_SETTABLE: Final = ("repeat", "disable_on_connection_error")


def add_hook_routes(app: web.Application, hooks: FakeHooks) -> None:
    """``/_fake/hooks``: GET the subscriptions (targets redacted) and delivery counters; POST
    ``{"repeat": 2}`` or ``{"disable_on_connection_error": false}`` to change the settings."""

    async def route(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            settings = loads(raw) if raw.strip() else {}
        except ValueError:
            settings = None
        if not isinstance(settings, dict):
            settings = {"<not a JSON object>": None}
        unknown = set(settings) - set(_SETTABLE)
        if unknown:
            detail = {"error": f"cannot set {sorted(unknown)}; settable: {list(_SETTABLE)}"}
            return web.Response(status=400, body=dumps(detail), content_type="application/json")
        for name, value in settings.items():
            setattr(hooks, name, value)
        document = {"subscriptions": hooks.summary(), **hooks.counters.to_json()}
        return web.Response(body=dumps(document), content_type="application/json")

    app.router.add_get("/_fake/hooks", route)
    app.router.add_post("/_fake/hooks", route)
