"""``/_fake/*``: controls for tests and benchmarks that drive the fake from another process.

These routes are not part of Actionstep: they take no bearer token, are never faulted, rate
limited or counted, and answer plain ``application/json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ._faults import FaultRule
from ._wire import dumps, loads

if TYPE_CHECKING:
    from ._server import FakeActionstep

__all__ = ["add_control_routes"]

_SETTABLE: Final = frozenset(
    {
        "deny_authorization",
        "enforce_scopes",
        "expires_in",
        "grace_seconds",
        "reuse_detection",
        "token_latency",
    }
)


def _ok(document: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(document), content_type="application/json")


def _bad(detail: str) -> web.Response:
    return _ok({"error": detail}, 400)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    return loads(raw) if raw.strip() else {}


def add_control_routes(app: web.Application, fake: FakeActionstep) -> None:
    """Register the control routes of ``fake`` on ``app``."""

    def guarded(
        handler: Callable[[Any], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            try:
                return await handler(await _body(request))
            except (ValueError, TypeError, KeyError) as exc:
                return _bad(str(exc))

        return route

    async def counters(_: Any) -> web.Response:
        return _ok(fake.counters.to_json())

    async def token(body: Any) -> web.Response:
        scopes = body.get("scopes", ["actions"])
        issued = fake.issue_token(scopes=tuple(scopes), expires_in=body.get("expires_in"))
        return _ok(
            {
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": issued.lifetime,
                "refresh_token": issued.refresh_token,
                "api_endpoint": issued.api_endpoint,
                "orgkey": issued.orgkey,
                "scopes": list(issued.scopes),
                "issued_at": issued.issued_at,
                "expires_at": issued.expires_at,
            }
        )

    async def add_faults(body: Any) -> web.Response:
        rules = body if isinstance(body, list) else [body]
        for rule in [FaultRule.from_json(item) for item in rules]:
            fake.add_fault(rule)
        return list_faults(body)

    def list_faults(_: Any) -> web.Response:
        return _ok({"faults": [rule.to_json() for rule in fake.faults]})

    async def get_faults(body: Any) -> web.Response:
        return list_faults(body)

    async def clear_faults(_: Any) -> web.Response:
        fake.clear_faults()
        return list_faults(None)

    async def rate_limit(body: Any) -> web.Response:
        fake.rate_limit(
            body.get("rate"), body.get("burst"), retry_after=bool(body.get("retry_after", True))
        )
        return _ok({"rate_limit": body})

    async def reset(body: Any) -> web.Response:
        fake.reset(data=bool(body.get("data", False)))
        return _ok({"reset": True})

    async def revoke(body: Any) -> web.Response:
        return _ok({"revoked": fake.revoke_access_token(str(body["token"]))})

    async def expire(body: Any) -> web.Response:
        return _ok({"expired": fake.expire_access_token(str(body["token"]))})

    async def config(body: Any) -> web.Response:
        unknown = set(body) - _SETTABLE
        if unknown:
            return _bad(f"cannot set {sorted(unknown)}; settable: {sorted(_SETTABLE)}")
        for name, value in body.items():
            setattr(fake, name, value)
        return _ok({name: getattr(fake, name) for name in sorted(_SETTABLE)})

    async def add_field(body: Any) -> web.Response:
        fake.add_field(str(body["resource"]), str(body["field"]), body.get("value"))
        return _ok({"added": body["field"]})

    app.router.add_get("/_fake/counters", guarded(counters))
    app.router.add_post("/_fake/fields", guarded(add_field))
    app.router.add_post("/_fake/token", guarded(token))
    app.router.add_get("/_fake/faults", guarded(get_faults))
    app.router.add_post("/_fake/faults", guarded(add_faults))
    app.router.add_delete("/_fake/faults", guarded(clear_faults))
    app.router.add_post("/_fake/rate_limit", guarded(rate_limit))
    app.router.add_post("/_fake/reset", guarded(reset))
    app.router.add_post("/_fake/revoke", guarded(revoke))
    app.router.add_post("/_fake/expire", guarded(expire))
    app.router.add_post("/_fake/config", guarded(config))
