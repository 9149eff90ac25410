"""FakeActionstep: the aiohttp application, its lifecycle and the test-facing controls."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import unquote, urlencode

from aiohttp import web

from .._catalogue import CATALOGUE
from .._client import AsyncResourceClient
from .._environment import Environment
from .._manager import TokenManager
from .._oauth import OAuthClient, normalise_scopes
from .._serving import Serving, serve
from .._tokens import Token
from ..stores import TokenStore
from ._auth import REFRESH_TTL, Authority, GrantError, Pair
from ._control import add_control_routes
from ._counters import FakeCounters, ReceivedRequest
from ._faults import AUTHORIZE_ROUTE, TOKEN_ROUTE, FaultRule, Faults, TokenBucket
from ._files import DOCUMENT_RESOURCES, FileStore
from ._hooks import FakeHooks, add_hook_routes
from ._rest import RESOURCE_NAME, Reply, RestApi, error_document, unknown_resource_document
from ._wire import dumps, loads

__all__ = ["FakeActionstep"]

log = logging.getLogger("actionstep_async.testing")

JSON_API: Final = "application/vnd.api+json"
_ACCEPTABLE: Final = frozenset({JSON_API, "application/json", "application/*", "*/*"})
_BODY_TYPES: Final = frozenset({JSON_API, "application/json"})
_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
"""PATCH updates like PUT: the actions YAML documents it (see _deviations.EXTRA_METHODS)."""
_HTML: Final = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Actionstep is temporarily unavailable</h1></body></html>"
)

Handler = Callable[[], Awaitable[web.StreamResponse]]


def _json(
    status: int,
    document: object,
    *,
    content_type: str = JSON_API,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status, body=dumps(document), content_type=content_type, headers=headers
    )


def _api_error(status: int, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, error_document(status, detail), headers=headers)


def _oauth_error(error: GrantError) -> web.Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="actionstep"'
    return _json(
        error.status,
        {"error": error.error, "error_description": error.description},
        content_type="application/json",
        headers=headers,
    )


def _bearer_error(code: str, description: str) -> web.Response:
    """The resource server's 401: an OAuth-style body, not the ``errors`` envelope."""
    return _json(
        401,
        {"error": code, "error_description": description},
        content_type="application/json",
        headers={"WWW-Authenticate": f'Bearer realm="actionstep", error="{code}"'},
    )


def _reply(reply: Reply) -> web.Response:
    if reply.document is None:
        return web.Response(status=reply.status, headers=reply.headers)
    return _json(reply.status, reply.document, headers=reply.headers)


def _accepts_json(header: str | None) -> bool:
    if not header:
        return True  # no Accept header means "anything" (RFC 9110)
    return any(part.split(";")[0].strip().lower() in _ACCEPTABLE for part in header.split(","))


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": f"{seconds:g}"}


class FakeActionstep:
    """An in-process Actionstep: OAuth endpoints, seeded resources, quirks and fault injection.

    Use it as an async context manager (or call :meth:`start` / :meth:`stop`); it listens on
    ``host:port`` (port 0 picks a free one) and every token it issues names ``api_endpoint``
    pointing back at itself. All data, tokens and fault dice are deterministic under ``seed``.
    """

    def __init__(
        self,
        records: Mapping[str, int] | None = None,
        *,
        seed: int = 0,
        client_id: str = "test-client-id",
        client_secret: str = "test-client-secret",
        redirect_uri: str = "http://127.0.0.1/callback",
        expires_in: float = 3600,
        reuse_detection: bool = False,
        grace_seconds: float = 0.0,
        token_latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        orgkey: str = "fakeorg",
        created_status: int = 200,
        refresh_expires_in: float = REFRESH_TTL,
        strict_redirect_uri: bool = False,
        enforce_scopes: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.orgkey = orgkey
        self.seed = seed
        self.token_latency = token_latency
        self.deny_authorization = False
        """When True the consent page redirects back with ``error=access_denied``."""
        self.enforce_scopes = enforce_scopes
        """When True (the default, like the real API) a token without the resource's scope (or
        ``all``) gets 403."""
        self.counters = FakeCounters()
        self.received: deque[ReceivedRequest] = deque(maxlen=1000)
        """The latest data-API requests, oldest first, for tests that check what was sent."""
        self.auth = Authority(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            expires_in=expires_in,
            counters=self.counters,
            seed=seed,
            reuse_detection=reuse_detection,
            grace_seconds=grace_seconds,
            refresh_expires_in=refresh_expires_in,
        )
        self.auth.strict_redirect_uri = strict_redirect_uri
        self.rest = RestApi(records, seed=seed, created_status=created_status)
        self.hooks = FakeHooks(self.rest)
        """REST hook subscriptions, deliveries and their counters."""
        self.rest.served = self.counters.records_served
        self.files = FileStore()
        """Uploads and documents; ``files.quarantine_delay`` slows the last part's answer."""
        self._faults = Faults(seed)
        self._bucket: TokenBucket | None = None
        self._requests = 0
        self._serving: Serving | None = None
        self._base_url: str | None = None
        self.app = self._build_app()

    # -- configuration passthroughs (tests flip these mid-test) ------------------------------

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    @property
    def client_secret(self) -> str:
        return self.auth.client_secret

    @property
    def redirect_uri(self) -> str:
        return self.auth.redirect_uri

    @property
    def expires_in(self) -> float:
        return self.auth.expires_in

    @expires_in.setter
    def expires_in(self, value: float) -> None:
        self.auth.expires_in = value

    @property
    def reuse_detection(self) -> bool:
        return self.auth.reuse_detection

    @reuse_detection.setter
    def reuse_detection(self, value: bool) -> None:
        self.auth.reuse_detection = value

    @property
    def grace_seconds(self) -> float:
        return self.auth.grace_seconds

    @grace_seconds.setter
    def grace_seconds(self, value: float) -> None:
        self.auth.grace_seconds = value

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; :attr:`base_url` is valid from now on."""
        if self._serving is not None:
            raise RuntimeError("FakeActionstep is already running")
        serving = await serve(self.app, self.host, self.port)
        self._serving = serving
        self.port = serving.port
        self._base_url = f"http://{serving.host}:{serving.port}"

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        serving, self._serving = self._serving, None
        await self.hooks.stop()
        if serving is not None:
            await serving.close()
        self.files.close()

    async def __aenter__(self) -> FakeActionstep:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (only while running)."""
        if self._base_url is None:
            raise RuntimeError("FakeActionstep is not started")
        return self._base_url

    @property
    def api_endpoint(self) -> str:
        """The ``api_endpoint`` every token response carries: ``{base_url}/api/``."""
        return f"{self.base_url}/api/"

    @property
    def environment(self) -> Environment:
        """An Environment whose authorize and token URLs are this fake's."""
        return Environment.local(self.base_url)

    # -- test controls --------------------------------------------------------------------------

    def issue_token(
        self, scopes: Iterable[str] | str = ("actions",), expires_in: float | None = None
    ) -> Token:
        """Mint a new token family directly, as if a user had just authorized.

        ``scopes`` is a list of resource names or one space-separated string (``"actions
        participants"``); ``"all"`` grants every resource.
        """
        pair = self.auth.issue(normalise_scopes(scopes), expires_in)
        return Token(
            access_token=pair.access.value,
            refresh_token=pair.refresh.value,
            expires_at=pair.access.expires_at,
            issued_at=pair.access.issued_at,
            api_endpoint=self.api_endpoint,
            token_type="bearer",
            orgkey=self.orgkey,
            scopes=pair.scopes,
        )

    def oauth_client(self) -> OAuthClient:
        """An OAuthClient registered with this fake (its client id, secret and redirect URI)."""
        return OAuthClient(
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=self.redirect_uri,
            environment=self.environment,
        )

    async def connect(
        self,
        key: str = "test",
        *,
        scopes: Iterable[str] | str = ("actions",),
        store: TokenStore | None = None,
        **client_options: Any,
    ) -> AsyncResourceClient:
        """A ready client: a TokenManager holding a freshly issued token, bound to this fake.

        ``client_options`` go to :class:`AsyncResourceClient`; close the client when done (or
        use ``async with``). ``client.manager`` is the TokenManager behind it.
        """
        manager = TokenManager(self.oauth_client(), store)
        await manager.save(key, self.issue_token(scopes))
        return AsyncResourceClient(manager, key, **client_options)

    def issue_code(self, scopes: Iterable[str] | str = ("actions",)) -> str:
        """An authorization code, as if the consent page had just redirected with it."""
        return self.auth.new_code(normalise_scopes(scopes))

    def revoke_access_token(self, access_token: str) -> bool:
        """Make one access token answer 401 from now on. False if the fake never issued it."""
        return self.auth.revoke_access(access_token)

    def expire_access_token(self, access_token: str) -> bool:
        """Make one access token expired now (its refresh token still works)."""
        return self.auth.expire_access(access_token)

    def revoke_token_family(self, token: str) -> bool:
        """Revoke every token descended from the same authorization as ``token``."""
        return self.auth.revoke_family(token)

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Start applying ``rule`` to matching requests (rules are checked in the order added)."""
        self._faults.add(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        return self._faults.rules

    def rate_limit(
        self, rate: float | None, burst: int | None = None, *, retry_after: bool = True
    ) -> None:
        """Token-bucket limit on the data API: over ``rate``/s (bursts of ``burst``) gets 429.

        ``rate=None`` turns it off. ``retry_after`` decides whether a Retry-After header is sent.
        """
        if rate is None:
            self._bucket = None
        else:
            size = burst if burst is not None else max(1, round(rate))
            self._bucket = TokenBucket(rate, size, retry_after=retry_after)

    def add_field(self, resource: str, name: str, value: object = None) -> None:
        """Every record of ``resource`` gains a field the API did not send before."""
        self.rest.table(resource).add_field(name, value)

    def reset(self, *, data: bool = False) -> None:
        """Zero counters, clear faults and rate limits; with ``data`` also forget all writes."""
        self.counters.reset()
        self.received.clear()
        self.clear_faults()
        self._bucket = None
        self.hooks.reset()
        if data:
            self.rest.reset()
            self.files.close()

    # -- the application ------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/api/oauth/authorize", self._authorize_route)
        app.router.add_route("*", "/api/oauth/token", self._token_route)
        app.router.add_route("*", "/api/rest/{resource}", self._rest_route)
        app.router.add_route("*", "/api/rest/{resource}/", self._rest_route)
        app.router.add_route("*", "/api/rest/{resource}/{ids}", self._rest_route)
        add_control_routes(app, self)
        add_hook_routes(app, self.hooks)
        return app

    async def _serve(
        self, request: web.Request, route: str, handler: Handler, *, rest: bool
    ) -> web.StreamResponse:
        """Count, tag and fault-inject one request around its real handler."""
        self._requests += 1
        request_id = f"fake-{self.seed}-{self._requests:08d}"
        response = await self._faulted(request, route, handler, rest=rest)
        dropped = request.transport is None or request.transport.is_closing()
        self.counters.requests[(request.method, route, 0 if dropped else response.status)] += 1
        response.headers["X-Request-Id"] = request_id
        return response

    async def _faulted(
        self, request: web.Request, route: str, handler: Handler, *, rest: bool
    ) -> web.StreamResponse:
        for rule in self._faults.select(route, request.method, rest=rest):
            self.counters.faults_fired[rule.kind] += 1
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency)
                continue
            if rule.kind == "drop":
                if rule.after:
                    await handler()
                return self._drop(request)
            return self._fault_response(rule, route)
        if rest and self._bucket is not None:
            wait = self._bucket.take()
            if wait is not None:
                headers = _retry_after(wait) if self._bucket.retry_after else {}
                return _api_error(429, "Rate limit exceeded; slow down", headers)
        return await handler()

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        # abort() resets the connection without writing; aiohttp then discards the response
        # quietly, where raising would log a traceback for every injected drop.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    @staticmethod
    def _fault_response(rule: FaultRule, route: str) -> web.Response:
        status = rule.response_status
        headers = _retry_after(rule.retry_after)
        if rule.kind == "html":
            return web.Response(
                status=status, body=_HTML, content_type="text/html", headers=headers
            )
        if rule.kind == "malformed":
            body = b'{"' + route.encode() + b'": [{"id": 1, "name": "Trunc'
            return web.Response(status=status, body=body, content_type=JSON_API, headers=headers)
        detail = "Rate limit exceeded; slow down" if rule.kind == "rate_limit" else "Injected fault"
        if route == TOKEN_ROUTE:
            # The token endpoint speaks RFC 6749, not the resource API's errors envelope.
            return _json(
                status,
                {"error": "temporarily_unavailable", "error_description": detail},
                content_type="application/json",
                headers=headers,
            )
        return _api_error(status, detail, headers)

    # -- OAuth ------------------------------------------------------------------------------------

    async def _authorize_route(self, request: web.Request) -> web.StreamResponse:
        self.counters.authorize_calls += 1
        return await self._serve(
            request, AUTHORIZE_ROUTE, lambda: self._authorize(request), rest=False
        )

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        # RFC 6749 4.1.2.1: never redirect to an unverified URI; show an error page instead.
        if not self.auth.client_known(client_id):
            return web.Response(status=400, text="Unknown client_id", content_type="text/plain")
        if not self.auth.redirect_allowed(redirect_uri):
            return web.Response(
                status=400, text="redirect_uri is not registered", content_type="text/plain"
            )
        state = query.get("state")
        scopes = tuple(query.get("scope", "").split())
        if query.get("response_type") != "code":
            params = {"error": "unsupported_response_type"}
        elif self.deny_authorization:
            params = {"error": "access_denied", "error_description": "The user declined"}
        elif not scopes:
            params = {"error": "invalid_scope", "error_description": "No scope requested"}
        else:
            params = {"code": self.auth.new_code(scopes, redirect_uri)}
        if state is not None:
            params["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return web.Response(
            status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"}
        )

    async def _token_route(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        self.counters.token_calls += 1
        form: dict[str, str] = dict(request.query)
        form.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        grant = form.get("grant_type", "")
        self.counters.token_calls_by_grant[grant] += 1
        if grant == "refresh_token" and form.get("refresh_token"):
            self.counters.refresh_presented[form["refresh_token"]] += 1
        return await self._serve(
            request, TOKEN_ROUTE, lambda: self._token(request, form), rest=False
        )

    async def _token(self, request: web.Request, form: dict[str, str]) -> web.StreamResponse:
        if self.token_latency > 0:
            await asyncio.sleep(self.token_latency)
        grant = form.get("grant_type")
        try:
            client_id = self.auth.check_client(*_client_credentials(request, form))
            if not grant:
                raise GrantError("invalid_request", "grant_type is required")
            if grant == "authorization_code":
                code = form.get("code")
                if not code:
                    raise GrantError("invalid_request", "code is required")
                pair = self.auth.exchange_code(
                    code, client_id=client_id, redirect_uri=form.get("redirect_uri")
                )
            elif grant == "refresh_token":
                refresh = form.get("refresh_token")
                if not refresh:
                    raise GrantError("invalid_request", "refresh_token is required")
                pair = self.auth.refresh(
                    refresh, client_id=client_id, redirect_uri=form.get("redirect_uri")
                )
            else:
                raise GrantError(
                    "unsupported_grant_type", "Only authorization_code and refresh_token"
                )
        except GrantError as exc:
            log.info("token request: grant=%s -> %s (%s)", grant, exc.error, exc.description)
            return _oauth_error(exc)
        log.info("token request: grant=%s -> issued", grant)
        return _json(
            200,
            self._token_document(pair),
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _token_document(self, pair: Pair) -> dict[str, Any]:
        return {
            "access_token": pair.access.value,
            "token_type": "bearer",
            "expires_in": self.auth.remaining(pair),
            "refresh_token": pair.refresh.value,
            "api_endpoint": self.api_endpoint,
            "orgkey": self.orgkey,
        }

    # -- resources ------------------------------------------------------------------------------

    async def _rest_route(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        route = resource if RESOURCE_NAME.fullmatch(resource) else "unknown"
        return await self._serve(request, route, lambda: self._rest(request, resource), rest=True)

    def _check_route(self, resource: str, method: str) -> web.Response | None:
        """A 404 for a resource the API does not have, a 405 for a method it lacks, else None."""
        if not RESOURCE_NAME.fullmatch(resource):
            return _json(404, unknown_resource_document(resource))
        if resource == "files":
            return None
        unknown = None if resource in DOCUMENT_RESOURCES else self.rest.unknown(resource)
        if unknown is not None:
            return _reply(unknown)
        spec = CATALOGUE.get(resource)
        if spec is not None and method not in spec.methods and method != "OPTIONS":
            allow = ", ".join(sorted(spec.methods))
            return _api_error(405, f"{resource} does not support {method}", {"Allow": allow})
        return None

    async def _rest(self, request: web.Request, resource: str) -> web.StreamResponse:
        started = time.perf_counter()
        method = request.method
        await self._journal(request)
        refused = self._check_headers(request, resource) or self._check_route(resource, method)
        if refused is not None:
            return refused
        if resource == "files":
            return await self.files.serve(request, request.match_info.get("ids"))
        raw_ids = request.match_info.get("ids")
        ids = [part for part in raw_ids.split(",") if part] if raw_ids else None
        url = f"{self.api_endpoint}rest/{resource}" + (f"/{raw_ids}" if raw_ids else "")
        before = self.hooks.before(resource, method, ids)  # REST hooks see every write
        if method == "GET":
            params = list(request.query.items())
            reply = self.rest.get(
                resource, ids, params, url=url, api_endpoint=self.api_endpoint, started=started
            )
            return _reply(reply)
        if method == "DELETE":
            if not ids:
                return _api_error(405, "DELETE needs one or more ids in the path")
            return _reply(
                self.hooks.after(resource, method, before, self.rest.delete(resource, ids))
            )
        if method not in _WRITE_METHODS:
            return _api_error(
                405, f"{method} is not supported", {"Allow": "GET, POST, PUT, PATCH, DELETE"}
            )
        try:
            body = loads(await request.read())
        except ValueError:
            return _api_error(400, "The request body is not valid JSON")
        if resource == "resthooks":
            body = self.hooks.prepare(method, body)
            if isinstance(body, str):
                return _api_error(400, body)
        if method == "POST":
            if ids:
                return _api_error(405, "POST creates records; it takes no id in the path")
            writer = self.files.attach if resource in DOCUMENT_RESOURCES else None
            if writer is not None:
                reply = writer(
                    self.rest, resource, body, api_endpoint=self.api_endpoint, started=started
                )
            else:
                reply = self.rest.create(
                    resource, body, api_endpoint=self.api_endpoint, started=started
                )
        else:
            if not ids:
                return _api_error(405, "PUT needs an id in the path")
            reply = self.rest.update(
                resource, ids, body, api_endpoint=self.api_endpoint, started=started
            )
        return _reply(self.hooks.after(resource, method, before, reply))

    async def _journal(self, request: web.Request) -> None:
        body: Any = None
        multipart = request.content_type.startswith("multipart/")  # file parts: not kept
        if request.method in _WRITE_METHODS and request.can_read_body and not multipart:
            try:
                body = loads(await request.read())
            except ValueError:
                body = None
        self.received.append(
            ReceivedRequest(
                method=request.method,
                path=request.path.removeprefix("/api/rest/"),
                query=tuple(request.query.items()),
                content_type=request.headers.get("Content-Type"),
                accept=request.headers.get("Accept"),
                authorized=request.headers.get("Authorization", "").startswith("Bearer "),
                body=body,
            )
        )

    def _check_headers(self, request: web.Request, resource: str) -> web.Response | None:
        """401 for a missing or bad bearer token, then 406 / 415 for the JSON API headers."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _bearer_error("invalid_token", "A bearer access token is required")
        problem = self.auth.check_access(token)
        if problem is not None:
            code = "expired_token" if "expired" in problem else "invalid_token"
            return _bearer_error(code, problem)
        if self.enforce_scopes:
            scopes = self.auth.scopes_of(token)
            if resource not in scopes and "all" not in scopes:
                return _api_error(403, f"insufficient_scope: the token lacks the {resource} scope")
        if not _accepts_json(request.headers.get("Accept")):
            return _api_error(406, f"Accept must allow {JSON_API}")
        if (
            request.method in _WRITE_METHODS
            and request.content_type not in _BODY_TYPES
            and resource != "files"  # multipart; checked where the parts are read
        ):
            return _api_error(415, f"Content-Type must be {JSON_API}")
        return None


def _client_credentials(
    request: web.Request, form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """HTTP Basic (client_secret_basic) wins over form fields (client_secret_post)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise GrantError("invalid_client", "Malformed Basic credentials", 401) from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise GrantError("invalid_client", "Malformed Basic credentials", 401)
        # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    return form.get("client_id"), form.get("client_secret")
