"""``client.hooks``: REST hook subscriptions that stay active, and the pull side (reconcile).

``ensure`` is a pure plan (:func:`plan_subscriptions`) executed by thin I/O: which hooks to
create, re-point, re-register or remove follows from the hooks that exist, the events wanted and
the secret that marks the hooks we own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeAlias

import attrs

from ._errors import InvalidRequestError, NotFoundError, ResponseDecodeError
from ._hook_model import (
    HOOK_EVENTS,
    EventName,
    Subscription,
    modified_field,
    parse_timestamp,
)
from ._hook_tokens import HookSecret, check_target, split_target
from ._models import Record, structure_record
from ._query import F

if TYPE_CHECKING:
    from ._client import AsyncResourceClient

__all__ = ["DeliveryLog", "EnsureResult", "Hooks", "PlanStep", "plan_subscriptions"]

RESOURCE: Final = "resthooks"
StepKind: TypeAlias = Literal["keep", "create", "retarget", "recreate", "remove"]


@attrs.frozen
class PlanStep:
    """One thing ``ensure`` will do: ``existing`` is None only for ``create``."""

    kind: StepKind
    event: str
    existing: Subscription | None = None


def check_events(events: Iterable[str]) -> tuple[EventName, ...]:
    """The events, deduplicated and sorted; InvalidRequestError names an unknown one."""
    if isinstance(events, str):
        raise InvalidRequestError("give a list of event names, not one string")
    known: dict[str, EventName] = {name: name for name in HOOK_EVENTS}
    checked: set[EventName] = set()
    for event in events:
        name = known.get(event)
        if name is None:
            raise InvalidRequestError(
                f"unknown REST hook event {event!r}; known: {', '.join(HOOK_EVENTS)}"
            )
        checked.add(name)
    return tuple(sorted(checked))


def _rank(hook: Subscription, target: str) -> tuple[bool, bool, int]:
    return (hook.active, split_target(hook.target_url)[0] == target, hook.id)


def plan_subscriptions(
    existing: Sequence[Subscription],
    events: Collection[str],
    target: str,
    owns: Callable[[str], bool],
) -> list[PlanStep]:
    """What to do so that exactly one owned, Active hook per wanted event points at ``target``.

    Hooks that ``owns`` rejects belong to someone else and are never touched; Deleted ones are
    ignored. Among our hooks for one event the best (Active, right target, newest) is kept or
    fixed and the others are removed; our hooks for events no longer wanted are removed.
    """
    ours: dict[str, list[Subscription]] = {}
    for hook in existing:
        if hook.status != "Deleted" and owns(hook.target_url):
            ours.setdefault(hook.event_name, []).append(hook)
    steps: list[PlanStep] = []
    for event in sorted(events):
        candidates = sorted(ours.pop(event, []), key=lambda h: _rank(h, target), reverse=True)
        if not candidates:
            steps.append(PlanStep("create", event))
            continue
        best, *extra = candidates
        if not best.active:
            kind: StepKind = "recreate"
        elif split_target(best.target_url)[0] != target:
            kind = "retarget"
        else:
            kind = "keep"
        steps.append(PlanStep(kind, event, best))
        steps.extend(PlanStep("remove", event, hook) for hook in extra)
    for event, hooks in sorted(ours.items()):
        steps.extend(PlanStep("remove", event, hook) for hook in hooks)
    return steps


@attrs.frozen
class EnsureResult:
    """What ``ensure`` changed. ``recreated`` hooks had been Disabled: changes made while they
    were off were not delivered, so reconcile their resources from ``triggered_last``."""

    created: tuple[Subscription, ...] = ()
    retargeted: tuple[Subscription, ...] = ()
    recreated: tuple[Subscription, ...] = ()
    removed: tuple[Subscription, ...] = ()
    unchanged: tuple[Subscription, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.created or self.retargeted or self.recreated or self.removed)

    @property
    def active(self) -> tuple[Subscription, ...]:
        """The subscriptions that now deliver to the target."""
        return (*self.unchanged, *self.created, *self.retargeted, *self.recreated)


class DeliveryLog(Protocol):
    """What reconcile asks the receiver: was this version of a record already delivered?"""

    def delivered(self, resource: str, id: str, modified: datetime | None) -> bool: ...


class Hooks:
    """REST hook subscriptions of one client (``client.hooks``)."""

    def __init__(self, client: AsyncResourceClient[Any]) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"Hooks({self._client!r})"

    async def list(self) -> list[Subscription]:
        """Every ``resthooks`` record of the organisation, whoever created it."""
        plain = self._client.with_options(typed=False)
        return [Subscription.from_wire(raw) async for raw in plain.iterate(RESOURCE)]

    async def create(
        self, event: EventName, target_url: str, *, secret: HookSecret
    ) -> Subscription:
        """Subscribe ``target_url`` (plus a fresh token) to ``event``."""
        (name,) = check_events([event])
        return await self._write("POST", None, name, secret.sign(check_target(target_url)))

    async def delete(self, hook: Subscription | int) -> bool:
        """Delete a subscription; False if it was already gone."""
        ident = hook.id if isinstance(hook, Subscription) else hook
        try:
            await self._client.delete(RESOURCE, ident)
        except NotFoundError:
            return False
        return True

    async def ensure(
        self, events: Iterable[EventName], target_url: str, *, secret: HookSecret
    ) -> EnsureResult:
        """Make exactly ``events`` deliver to ``target_url``, idempotently.

        Creates what is missing, re-registers our hooks that are Disabled (Actionstep turns a
        hook off after one non-200 answer) and re-points ours that target another URL, removes
        ours for events not listed, and leaves hooks minted under another secret alone. Call it
        at start-up and then every few minutes.
        """
        wanted = check_events(events)
        target = check_target(target_url)
        steps = plan_subscriptions(await self.list(), wanted, target, secret.owns)
        done: dict[StepKind, list[Subscription]] = {}
        for step in steps:
            done.setdefault(step.kind, []).append(await self._apply(step, target, secret))
        return EnsureResult(
            created=tuple(done.get("create", ())),
            retargeted=tuple(done.get("retarget", ())),
            recreated=tuple(done.get("recreate", ())),
            removed=tuple(done.get("remove", ())),
            unchanged=tuple(done.get("keep", ())),
        )

    async def _apply(self, step: PlanStep, target: str, secret: HookSecret) -> Subscription:
        hook = step.existing
        if step.kind == "create" or hook is None:
            return await self._write("POST", None, step.event, secret.sign(target))
        if step.kind == "keep":
            return hook
        if step.kind == "retarget":
            return await self._write("PUT", hook.id, step.event, secret.sign(target))
        await self.delete(hook)
        if step.kind == "remove":
            return hook
        # Disabled: whether a PUT re-enables a hook is undocumented; a new one always works.
        return await self._write("POST", None, step.event, secret.sign(target))

    async def _write(self, method: str, ident: int | None, event: str, url: str) -> Subscription:
        fields = {"eventName": event, "targetUrl": url}
        plain = self._client.with_options(typed=False)
        if ident is None:
            written = await plain.create(RESOURCE, fields)
        else:
            written = await plain.update(RESOURCE, ident, fields)
        if written is None:
            raise InvalidRequestError(f"{method} {RESOURCE} answered without the hook record")
        return Subscription.from_wire(written)

    def reconcile(
        self,
        resource: str,
        *,
        since: datetime,
        seen: DeliveryLog | None = None,
        overlap: timedelta = timedelta(seconds=1),
    ) -> AsyncIterator[Any]:
        """Records of ``resource`` modified since ``since`` that the hooks did not deliver.

        Queries ``<modified field>_gteq=since - overlap`` (oldest first) and skips versions
        ``seen`` (the receiver) already handed to your handler. Records come typed when the
        resource has a model. InvalidRequestError if the resource has no modified timestamp.
        """
        field = modified_field(resource)
        if field is None:
            raise InvalidRequestError(
                f"{resource} records carry no modified timestamp, so changes to them cannot be"
                " queried; re-read the ones you track instead"
            )
        if since.tzinfo is None:
            raise InvalidRequestError("since must be an aware datetime (naive is ambiguous)")
        filters = [F(field).gteq(since - overlap)]
        plain = self._client.with_options(typed=False)
        records = plain.iterate(resource, filters=filters, sort=[field])
        return _unseen(resource, field, records, seen)


async def _unseen(
    resource: str, field: str, records: AsyncIterator[Any], seen: DeliveryLog | None
) -> AsyncIterator[Any]:
    async for record in records:
        raw = dict(record)
        modified = parse_timestamp(raw.get(field))
        if seen is not None and seen.delivered(resource, str(raw.get("id")), modified):
            continue
        yield typed_record(resource, raw)


def typed_record(resource: str, raw: dict[str, Any]) -> Any:
    """The typed model of ``resource`` when the library has one, else a :class:`Record`."""
    try:
        return structure_record(resource, raw, typed=True)
    except ResponseDecodeError:
        # A field the model cannot convert must not lose the change: hand over the raw record.
        return Record(resource, raw)
