"""A REST hook delivery, parsed: the JSON:API 1.0 envelope Actionstep POSTs (survey 10.4).

Unlike the REST API's resource-keyed answers, a delivery is ``data.{type, id, attributes,
relationships}`` plus ``meta.debug.resthook.{id, event_name, resource_type, resource_id,
trigger_count}``. The record is rebuilt in the REST API's own shape (attributes, ``id``, and
``links`` of ids) so the same models decode it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ._errors import ResponseDecodeError
from ._hook_model import modified_field, parse_timestamp
from ._hooks import typed_record
from ._models import decode_json

__all__ = ["WebhookEvent", "WebhookPayloadError", "parse_delivery"]


class WebhookPayloadError(ResponseDecodeError):
    """A delivery body that is not the REST hook envelope."""


@attrs.frozen
class WebhookEvent:
    """One change Actionstep pushed.

    ``record`` is the typed model of ``resource`` when the library has one (else a
    :class:`Record`), decoded as from a GET. ``modified_at`` is the record's modified timestamp
    when the resource has one; ``received_at`` is when this receiver got it.
    """

    event_name: str
    resource: str
    id: str
    record: Any
    hook_id: str
    trigger_count: int
    received_at: datetime
    modified_at: datetime | None = None

    @property
    def key(self) -> tuple[str, int] | None:
        """``(hook id, trigger count)``: the same delivery seen twice has the same key."""
        return (self.hook_id, self.trigger_count) if self.hook_id else None


def _need(mapping: object, name: str, where: str) -> Any:
    if not isinstance(mapping, dict) or name not in mapping:
        raise WebhookPayloadError(f"the delivery has no {where}{name}")
    return mapping[name]


def _text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise WebhookPayloadError(f"the delivery's {what} is not a string or number")
    return str(value)


def _link(value: object) -> Any:
    """A relationship as the REST API's ``links`` shows it: an id, a list of ids or None."""
    data = value.get("data") if isinstance(value, dict) else None
    if isinstance(data, list):
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    if isinstance(data, dict) and "id" in data:
        return str(data["id"])
    return None


def _wire_id(ident: str) -> int | str:
    return int(ident) if ident.isdigit() and len(ident) < 19 else ident


def _resthook(document: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = document.get("meta")
    debug = meta.get("debug") if isinstance(meta, dict) else None
    hook = debug.get("resthook") if isinstance(debug, dict) else None
    if not isinstance(hook, dict):
        raise WebhookPayloadError("the delivery has no meta.debug.resthook block")
    return hook


def parse_delivery(body: bytes, *, received_at: datetime) -> WebhookEvent:
    """The event in one delivery body, or WebhookPayloadError saying what is wrong."""
    try:
        document = decode_json(body, content_type="application/json", what="REST hook delivery")
    except ResponseDecodeError as exc:
        raise WebhookPayloadError(str(exc)) from None
    if not isinstance(document, dict):
        raise WebhookPayloadError("the delivery is not a JSON object")
    data = _need(document, "data", "")
    resource = _text(_need(data, "type", "data."), "data.type")
    ident = _text(_need(data, "id", "data."), "data.id")
    attributes = data.get("attributes")
    relationships = data.get("relationships")
    attributes = {} if attributes is None else attributes
    relationships = {} if relationships is None else relationships
    if not isinstance(attributes, dict) or not isinstance(relationships, dict):
        raise WebhookPayloadError("data.attributes and data.relationships must be objects")
    hook = _resthook(document)
    event_name = _text(_need(hook, "event_name", "meta.debug.resthook."), "event_name")
    count = hook.get("trigger_count", 0)
    if isinstance(count, bool) or not isinstance(count, int | str) or not str(count).isdigit():
        raise WebhookPayloadError("meta.debug.resthook.trigger_count is not a count")
    raw: dict[str, Any] = {**attributes, "id": _wire_id(ident)}
    raw["links"] = {str(name): _link(value) for name, value in relationships.items()}
    field = modified_field(resource)
    return WebhookEvent(
        event_name=event_name,
        resource=resource,
        id=ident,
        record=typed_record(resource, raw),
        hook_id=str(hook.get("id") or ""),
        trigger_count=int(count),
        received_at=received_at,
        modified_at=parse_timestamp(raw.get(field)) if field else None,
    )
