"""Event handlers that keep the search index current, and the search query itself."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import inventory, product
from microcommerce.contracts.events import EventEnvelope
from microcommerce.services.search import domain, store
from microcommerce.services.search.messages import GetIndexEntry, SearchPage, SearchProducts
from microcommerce.storage import Executor

T = TypeVar("T")


def typed(data: Any, kind: type[T]) -> T:
    """Event data is normally typed already; a dict (unregistered at decode time) is converted."""
    return data if isinstance(data, kind) else msgspec.convert(data, kind)


class SearchActor(ServiceActor):
    @on_event(product.PRODUCT_CREATED, product.PRODUCT_UPDATED)
    async def on_product(self, tx: Executor, data: Any, envelope: EventEnvelope) -> None:
        info = typed(data, product.ProductData)
        entry = await store.get(tx, info.id)
        merged = domain.apply_product(entry, info, domain.normalize_time(envelope.occurredAt),
                                      created=envelope.eventType == product.PRODUCT_CREATED)
        if merged is not None:
            await store.save(tx, merged, entry)

    @on_event(product.PRODUCT_DELETED)
    async def on_product_deleted(self, tx: Executor, data: Any, envelope: EventEnvelope) -> None:
        deleted = typed(data, product.ProductDeleted)
        entry = await store.get(tx, deleted.id)
        merged = domain.apply_delete(entry, deleted.id, domain.normalize_time(envelope.occurredAt))
        if merged is not None:
            await store.save(tx, merged, entry)

    @on_event(inventory.STOCK_RESERVED, inventory.STOCK_RELEASED, inventory.STOCK_CONFIRMED,
              inventory.STOCK_UPDATED)
    async def on_stock(self, tx: Executor, data: Any, envelope: EventEnvelope) -> None:
        stock = typed(data, inventory.StockChanged)
        entry = await store.get(tx, stock.productId)
        merged = domain.apply_stock(entry, stock, domain.normalize_time(envelope.occurredAt))
        if merged is not None:
            await store.save(tx, merged, entry)

    @handles(SearchProducts)
    async def search(self, cmd: SearchProducts) -> SearchPage:
        items, total = await store.search(self.db, cmd.filters)
        return SearchPage(items=items, total=total, page=cmd.filters.page,
                          pageSize=cmd.filters.page_size)

    @handles(GetIndexEntry)
    async def get_entry(self, cmd: GetIndexEntry) -> domain.IndexEntry | None:
        return await store.get(self.db, cmd.product_id)
