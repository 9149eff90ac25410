"""Resource accessors: ``client.actions.get(1) -> Action``, checked writes, typed pages.

Each catalogue resource has a generated subclass of :class:`Accessor` (in ``_generated.py``)
that adds only the methods the resource documents, with keyword arguments typed per resource,
so a wrong field name or a missing required one is a type error before it is a runtime one.
The shared work (typed decoding, checking a write against the catalogue) lives here.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from ._convert import Id, Model
from ._errors import InvalidRequestError
from ._query import FiltersArg, Names, NamesByResource
from ._writes import check_write, save_body

if TYPE_CHECKING:
    from ._catalogue import ResourceSpec
    from ._client import AsyncResourceClient
    from ._models import Page

__all__ = ["Accessor"]

M = TypeVar("M", bound=Model)


@functools.cache
def _catalogue() -> Mapping[str, ResourceSpec]:
    # Imported on first use: the catalogue is built from the generated module, which defines
    # the subclasses of Accessor and so imports this module first.
    from ._catalogue import CATALOGUE

    return CATALOGUE


class Accessor(Generic[M]):
    """Typed access to one resource through an :class:`AsyncResourceClient`.

    Records always come back as the resource's model, whatever the client's ``typed``
    setting. Writes take the model's attribute names (``is_favorite=True``) and ids of linked
    records under ``links=`` by their wire names (``links={"action": 9}``).
    """

    resource: ClassVar[str]
    __slots__ = ("_client", "spec")

    def __init__(self, client: AsyncResourceClient[Any]) -> None:
        self._client: AsyncResourceClient[Any] = client._typed()
        self.spec: ResourceSpec = _catalogue()[self.resource]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.resource}>"

    async def list(
        self,
        *,
        filters: FiltersArg = None,
        include: Names | None = None,
        fields: Names | NamesByResource | None = None,
        sort: Names | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[M]:
        """One page of a query, as ``client.list`` but typed."""
        found = await self._client.list(
            self.resource,
            filters=filters,
            include=include,
            fields=fields,
            sort=sort,
            page=page,
            page_size=page_size,
        )
        return cast("Page[M]", found)

    def iterate(
        self,
        *,
        filters: FiltersArg = None,
        include: Names | None = None,
        fields: Names | NamesByResource | None = None,
        sort: Names | None = None,
        page_size: int = 200,
        concurrency: int = 4,
        adaptive: bool = True,
        prefetch: int | None = None,
    ) -> AsyncIterator[M]:
        """Every record of a query across all pages, as ``client.iterate`` but typed."""
        found = self._client.iterate(
            self.resource,
            filters=filters,
            include=include,
            fields=fields,
            sort=sort,
            page_size=page_size,
            concurrency=concurrency,
            adaptive=adaptive,
            prefetch=prefetch,
        )
        return cast("AsyncIterator[M]", found)

    async def _get(self, id: Id) -> M:
        return cast(M, await self._client.get(self.resource, id))

    async def _get_many(self, ids: Sequence[Id]) -> builtins.list[M]:
        return cast("builtins.list[M]", await self._client.get(self.resource, tuple(ids)))

    async def _create(self, fields: Mapping[str, Any], links: Mapping[str, Any] | None) -> M:
        body, wire_links = check_write(self.spec, fields, links, creating=True)
        return cast(M, await self._client.create(self.resource, body, links=wire_links))

    async def _update(
        self, id: Id, fields: Mapping[str, Any], links: Mapping[str, Any] | None
    ) -> M:
        body, wire_links = check_write(self.spec, fields, links, creating=False)
        return cast(M, await self._client.update(self.resource, id, body, links=wire_links))

    async def _save(self, record: M, include_extra: bool) -> M:
        if record.id is None:
            raise InvalidRequestError(f"this {self.resource} record has no id to save it by")
        body, wire_links = save_body(self.spec, record, include_extra=include_extra)
        return cast(M, await self._client.update(self.resource, record.id, body, links=wire_links))

    async def _delete(self, id: Id | Sequence[Id]) -> None:
        await self._client.delete(self.resource, id)
