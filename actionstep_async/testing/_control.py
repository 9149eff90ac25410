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


def _guarded(
    handler: Callable[[Any], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A route that parses the JSON body and answers 400 for a body the handler cannot use."""

    async def route(request: web.Request) -> web.Response:
        try:
            return await handler(await _body(request))
        except (ValueError, TypeError, KeyError) as exc:
            return _bad(str(exc))

    return route


class _Controls:
    """One handler per control route, each taking the parsed JSON body."""

    def __init__(self, fake: FakeActionstep) -> None:
        self.fake = fake

    async def counters(self, _: Any) -> web.Response:
        return _ok(self.fake.counters.to_json())

    async def token(self, body: Any) -> web.Response:
        scopes = body.get("scopes", ["actions"])
        issued = self.fake.issue_token(scopes=scopes, expires_in=body.get("expires_in"))
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

    async def add_field(self, body: Any) -> web.Response:
        self.fake.add_field(str(body["resource"]), str(body["field"]), body.get("value"))
        return _ok({"added": body["field"]})

    async def get_faults(self, _: Any) -> web.Response:
        return _ok({"faults": [rule.to_json() for rule in self.fake.faults]})

    async def add_faults(self, body: Any) -> web.Response:
        rules = body if isinstance(body, list) else [body]
        for rule in [FaultRule.from_json(item) for item in rules]:
            self.fake.add_fault(rule)
        return await self.get_faults(None)

    async def clear_faults(self, _: Any) -> web.Response:
        self.fake.clear_faults()
        return await self.get_faults(None)

    async def rate_limit(self, body: Any) -> web.Response:
        self.fake.rate_limit(
            body.get("rate"), body.get("burst"), retry_after=bool(body.get("retry_after", True))
        )
        return _ok({"rate_limit": body})

    async def reset(self, body: Any) -> web.Response:
        self.fake.reset(data=bool(body.get("data", False)))
        return _ok({"reset": True})

    async def revoke(self, body: Any) -> web.Response:
        return _ok({"revoked": self.fake.revoke_access_token(str(body["token"]))})

    async def expire(self, body: Any) -> web.Response:
        return _ok({"expired": self.fake.expire_access_token(str(body["token"]))})

    async def config(self, body: Any) -> web.Response:
        unknown = set(body) - _SETTABLE
        if unknown:
            return _bad(f"cannot set {sorted(unknown)}; settable: {sorted(_SETTABLE)}")
        for name, value in body.items():
            setattr(self.fake, name, value)
        return _ok({name: getattr(self.fake, name) for name in sorted(_SETTABLE)})


def add_control_routes(app: web.Application, fake: FakeActionstep) -> None:
    """Register the control routes of ``fake`` on ``app``."""
    controls = _Controls(fake)
    routes: list[tuple[str, str, Callable[[Any], Awaitable[web.Response]]]] = [
        ("GET", "/_fake/counters", controls.counters),
        ("POST", "/_fake/fields", controls.add_field),
        ("POST", "/_fake/token", controls.token),
        ("GET", "/_fake/faults", controls.get_faults),
        ("POST", "/_fake/faults", controls.add_faults),
        ("DELETE", "/_fake/faults", controls.clear_faults),
        ("POST", "/_fake/rate_limit", controls.rate_limit),
        ("POST", "/_fake/reset", controls.reset),
        ("POST", "/_fake/revoke", controls.revoke),
        ("POST", "/_fake/expire", controls.expire),
        ("POST", "/_fake/config", controls.config),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))
