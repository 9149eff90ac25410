"""The resource API's semantics, independent of aiohttp: reads, writes and the response envelope."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlencode

import attrs

from .._catalogue import ResourceSpec
from ._data import DEFAULT_RECORDS, SEEDED_RESOURCES, Context, RawRecord, ResourceSchema, Table
from ._data import schema_for as _schema_for
from ._query import Query, QueryError, link_ids, matches, parse_query, project, sort_records

__all__ = [
    "RESOURCE_NAME",
    "Reply",
    "RestApi",
    "error_document",
    "unknown_resource_document",
    "validation_document",
]

RESOURCE_NAME: Final = re.compile(r"[a-z][a-z0-9]{0,63}")
"""Resource names are lower-case words; the API is case-sensitive, so ``Actions`` is a 404."""


def error_document(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    """Actionstep's error envelope: ``errors`` is the only top-level key."""
    phrase = title or HTTPStatus(status).phrase
    return {"errors": [{"status": str(status), "title": phrase, "detail": detail}]}


def unknown_resource_document(resource: str) -> dict[str, Any]:
    """What the API answers for a resource name it does not have: one ``errors`` *object*."""
    return {
        "errors": {
            "status": 404,
            "code": "AS-TBC",
            "title": "API Resource Not Found",
            "detail": f"The requested resource '{resource}' does not exist.",
        }
    }


def validation_document(problems: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """A 422 body: one error per problem, each with a ``code`` and the field it is about."""
    return {
        "errors": [
            {
                "status": "422",
                "code": code,
                "title": "Validation Error",
                "detail": detail,
                "source": {"pointer": pointer},
            }
            for code, pointer, detail in problems
        ]
    }


@attrs.frozen
class Reply:
    """A status and a JSON document (``None`` for an empty body) plus extra headers."""

    status: int
    document: dict[str, Any] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


def _error(status: int, detail: str) -> Reply:
    return Reply(status, error_document(status, detail))


class RestApi:
    """All tables plus GET/POST/PUT/DELETE as Actionstep answers them."""

    def __init__(
        self, records: Mapping[str, int] | None, *, seed: int, created_status: int = 200
    ) -> None:
        counts = dict(DEFAULT_RECORDS)
        for name, count in (records or {}).items():
            if name not in SEEDED_RESOURCES:
                raise ValueError(f"cannot seed {name!r}; seeded resources: {SEEDED_RESOURCES}")
            if count < 0:
                raise ValueError("record counts must not be negative")
            counts[name] = count
        self._counts = counts
        self._seed = seed
        self.created_status = created_status
        self.paging_keeps_query = True
        """nextPage/prevPage carry the request's other parameters (False: only ``?page=N``)."""
        self._links_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.generic_store = False
        """Serve any other resource name as an empty store (True), or 404 as the API does."""
        self.served: Counter[str] = Counter()
        """Records answered per resource (the server shares its counters' one)."""
        self.reset()

    def reset(self) -> None:
        """Forget every write: back to the seeded data."""
        ctx = Context(self._counts)
        self._tables = {
            name: Table(_schema_for(name), self._counts.get(name, 0), self._seed, ctx)
            for name in SEEDED_RESOURCES
        }

    # -- Resolver protocol ----------------------------------------------------------------

    def schema(self, resource: str) -> ResourceSchema:
        return self.table(resource).schema

    def lookup(self, resource: str, ids: Iterable[str]) -> list[RawRecord]:
        table = self.table(resource)
        found: list[RawRecord] = []
        for text in ids:
            key = table.parse_key(text)
            record = table.get(key) if key is not None else None
            if record is not None:
                found.append(record)
        return found

    def unknown(self, resource: str) -> Reply | None:
        """The 404 for a resource the API does not have, or None if this fake serves it."""
        if resource in self._tables or self.generic_store:
            return None
        return Reply(404, unknown_resource_document(resource))

    def table(self, resource: str) -> Table:
        table = self._tables.get(resource)
        if table is None:
            # Any other resource name is a generic store, empty until something is POSTed.
            table = self._tables[resource] = Table(
                _schema_for(resource), 0, self._seed, Context({})
            )
        return table

    # -- reads ----------------------------------------------------------------------------

    def get(
        self,
        resource: str,
        ids: Sequence[str] | None,
        params: Sequence[tuple[str, str]],
        *,
        url: str,
        api_endpoint: str,
        started: float,
    ) -> Reply:
        """A GET of a collection (``ids`` None) or of a comma list of ids."""
        table = self.table(resource)
        try:
            query = parse_query(resource, params, self)
        except QueryError as exc:
            return _error(400, str(exc))
        if resource == "users" and ids == ["current"]:
            ids = ["1"]  # the authorising user; every fake token belongs to user 1
        if ids is not None:
            records = self.lookup(resource, ids)
            if not records:
                return _error(404, f"No {resource} found with the requested id")
            records = self._filter(resource, records, query)
            page_records, total = self._page(records, query)
        elif query.plain:
            keys = table.keys()
            total = len(keys)
            start = (query.page - 1) * query.page_size
            page_records = list(table.records(keys[start : start + query.page_size]))
        else:
            records = self._filter(resource, list(table.records()), query)
            page_records, total = self._page(records, query)
        if not page_records:
            # The real API answers "nothing matched" with 204 and no body, not an empty list.
            return Reply(204)
        fields = query.fields.get(resource)
        shown = [project(record, fields) for record in page_records]
        self.served[resource if fields is None else f"{resource}:fields"] += len(shown)
        document: dict[str, Any] = {
            "links": self._links(resource, api_endpoint),
            # One record comes back as an object, several as a list: a quirk clients must handle.
            resource: shown[0] if len(shown) == 1 else shown,
        }
        if query.includes:
            document["linked"] = self._linked(resource, page_records, query)
        document["meta"] = {
            "paging": {resource: self._paging(query, total, params, url)},
            "debug": _debug(started),
        }
        return Reply(200, document)

    def _filter(self, resource: str, records: list[RawRecord], query: Query) -> list[RawRecord]:
        if query.filters:
            records = [
                record
                for record in records
                if all(matches(record, resource, filt, self) for filt in query.filters)
            ]
        if query.sort:
            records = sort_records(records, query.sort)
        return records

    @staticmethod
    def _page(records: list[RawRecord], query: Query) -> tuple[list[RawRecord], int]:
        start = (query.page - 1) * query.page_size
        return records[start : start + query.page_size], len(records)

    def _paging(
        self, query: Query, total: int, params: Sequence[tuple[str, str]], url: str
    ) -> dict[str, Any]:
        pages = max(1, -(-total // query.page_size))

        def link(page: int) -> str:
            kept = [(k, v) for k, v in params if k != "page"] if self.paging_keeps_query else []
            return f"{url}?{urlencode([*kept, ('page', str(page))])}"

        return {
            "recordCount": total,
            "pageCount": pages,
            "page": query.page,
            "pageSize": query.page_size,
            "prevPage": link(query.page - 1) if query.page > 1 else None,
            "nextPage": link(query.page + 1) if query.page < pages else None,
        }

    def _links(self, resource: str, api_endpoint: str) -> dict[str, Any]:
        cached = self._links_cache.get((resource, api_endpoint))
        if cached is None:
            cached = {
                f"{resource}.{field}": {
                    "href": f"{api_endpoint}rest/{target}/{{{resource}.{field}}}",
                    "type": target,
                }
                for field, target in self.schema(resource).link_types.items()
            }
            self._links_cache[(resource, api_endpoint)] = cached
        return cached

    def _linked(
        self, resource: str, records: list[RawRecord], query: Query
    ) -> dict[str, list[RawRecord]]:
        linked: dict[str, dict[str, RawRecord]] = {}
        for include in query.includes:
            kind, current = resource, records
            for link in include.path:
                target = self.schema(kind).link_types.get(link)
                if target is None:
                    break
                wanted: dict[str, None] = {}
                for record in current:
                    for ident in link_ids((record.get("links") or {}).get(link)):
                        wanted[ident] = None
                current = self.lookup(target, wanted)
                bucket = linked.setdefault(target, {})
                for record in current:
                    bucket.setdefault(str(record["id"]), record)
                kind = target
        return {
            kind: [project(record, query.fields.get(kind)) for record in bucket.values()]
            for kind, bucket in linked.items()
            if bucket
        }

    # -- writes ---------------------------------------------------------------------------

    def create(self, resource: str, body: object, *, api_endpoint: str, started: float) -> Reply:
        items = _unwrap(resource, body)
        if isinstance(items, Reply):
            return items
        table = self.table(resource)
        invalid = _validate(table.schema, items, creating=True)
        if invalid is not None:
            return invalid
        created: list[RawRecord] = []
        for item in items:
            try:
                created.append(table.create(item))
            except KeyError:
                return _error(400, f"A {resource} record with that id already exists")
        return Reply(
            self.created_status, self._write_document(resource, created, api_endpoint, started)
        )

    def update(
        self, resource: str, ids: Sequence[str], body: object, *, api_endpoint: str, started: float
    ) -> Reply:
        items = _unwrap(resource, body)
        if isinstance(items, Reply):
            return items
        if len(items) != 1:
            return _error(400, "PUT takes exactly one record")
        table = self.table(resource)
        invalid = _validate(table.schema, items, creating=False)
        if invalid is not None:
            return invalid
        keys = [table.parse_key(text) for text in ids]
        if any(key is None or table.get(key) is None for key in keys):
            return _error(404, f"No {resource} found with the requested id")
        updated = [table.update(key, items[0]) for key in keys if key is not None]
        records = [record for record in updated if record is not None]
        return Reply(200, self._write_document(resource, records, api_endpoint, started))

    def delete(self, resource: str, ids: Sequence[str]) -> Reply:
        table = self.table(resource)
        keys = [table.parse_key(text) for text in ids]
        # All or nothing: a list naming one missing record deletes none of them.
        if any(key is None or table.get(key) is None for key in keys):
            return _error(404, f"No {resource} found with the requested id")
        for key in keys:
            if key is not None:
                table.delete(key)
        return Reply(204)

    def _write_document(
        self, resource: str, records: list[RawRecord], api_endpoint: str, started: float
    ) -> dict[str, Any]:
        return {
            "links": self._links(resource, api_endpoint),
            resource: records[0] if len(records) == 1 else records,
            "meta": {"debug": _debug(started)},
        }


def _unwrap(resource: str, body: object) -> list[Mapping[str, Any]] | Reply:
    """The records of a write body ``{resource: {...}}`` or ``{resource: [{...}]}``."""
    if not isinstance(body, Mapping) or resource not in body:
        return _error(400, f'The request body must be wrapped as {{"{resource}": {{...}}}}')
    inner = body[resource]
    items = inner if isinstance(inner, list) else [inner]
    if not items or not all(isinstance(item, Mapping) for item in items):
        return _error(400, f"'{resource}' must be an object or a list of objects")
    return items


def _validate(
    schema: ResourceSchema, items: Sequence[Mapping[str, Any]], *, creating: bool
) -> Reply | None:
    """422 with coded errors for a write the resource's catalogue entry does not allow."""
    spec = schema.spec
    if spec is None:
        return None
    problems = []
    for item in items:
        problems.extend(write_problems(spec, item, creating=creating))
    return Reply(422, validation_document(problems)) if problems else None


def write_problems(
    spec: ResourceSpec, item: Mapping[str, Any], *, creating: bool
) -> list[tuple[str, str, str]]:
    """(code, pointer, detail) for each field of one written record the API would refuse."""
    allowed = spec.create_writable if creating else spec.update_writable
    links = item.get("links") or {}
    given = {name for name in item if name != "links"} | set(
        links if isinstance(links, dict) else ()
    )
    problems = []
    for name in sorted(given):
        where = f"/{spec.name}/links/{name}" if name in links else f"/{spec.name}/{name}"
        field = spec.field(name)
        if field is None:
            problems.append(("unknown_field", where, f"{spec.name} has no field '{name}'"))
        elif name not in allowed:
            problems.append(("read_only_field", where, f"'{name}' cannot be written"))
        elif field.kind == "enum" and item.get(name) not in (None, *field.enum):
            problems.append(("invalid_value", where, f"'{name}' must be one of {field.enum}"))
    if creating:
        for name in sorted(spec.create_required - given):
            problems.append(
                ("missing_required_field", f"/{spec.name}/{name}", f"'{name}' is required")
            )
    return problems


def _debug(started: float) -> dict[str, Any]:
    return {
        "requestTime": f"{time.perf_counter() - started:.6f}",
        "server": "fake-actionstep",
        "app": "actionstep-async",
        "rl": None,
    }
