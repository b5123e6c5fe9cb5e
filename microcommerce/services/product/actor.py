"""Command handlers of the product service: categories, products, the lookup other services use."""

from __future__ import annotations

from typing import Any

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import inventory
from microcommerce.contracts import product as contract
from microcommerce.contracts.events import EventEnvelope
from microcommerce.errors import BadRequest, Conflict, NotFound, ServiceError
from microcommerce.services.product import domain, store
from microcommerce.services.product.messages import (
    CatalogCounts,
    CatalogSize,
    CategoryView,
    CreateCategory,
    CreateProduct,
    DeleteProduct,
    GetProductView,
    ListCategories,
    ListProducts,
    ProductPage,
    ProductView,
    UpdateProduct,
)
from microcommerce.storage import Executor, IntegrityError


def product_event(view: ProductView, version: int) -> contract.ProductData:
    return contract.ProductData(
        id=view.id, categoryId=view.categoryId, name=view.name, description=view.description,
        price=view.price, currency=view.currency, stockQuantity=view.stockQuantity,
        images=[image.url for image in view.images], createdBy=view.createdBy,
        categoryName=view.categoryName, version=version,
    )


class ProductActor(ServiceActor):
    # -- categories ------------------------------------------------------------------------
    @handles(CreateCategory)
    async def create_category(self, cmd: CreateCategory) -> CategoryView:
        key = domain.name_key(cmd.name)
        duplicate = Conflict(f"A category named {cmd.name!r} already exists")
        try:
            async with self.db.transaction() as tx:
                if await store.category_name_taken(tx, key):
                    raise duplicate
                slug = domain.unique_slug(cmd.slug, await store.slugs_starting_with(tx, cmd.slug))
                category_id = await store.insert_category(tx, cmd.name, key, slug, cmd.description)
                row = await store.category_by_id(tx, category_id)
        except IntegrityError:
            raise duplicate from None
        assert row is not None
        return store.to_category(row)

    @handles(ListCategories)
    async def list_categories(self, cmd: ListCategories) -> list[CategoryView]:
        return [store.to_category(row) for row in await store.list_categories(self.db)]

    # -- products --------------------------------------------------------------------------
    @handles(CreateProduct)
    async def create_product(self, cmd: CreateProduct) -> ProductView:
        async with self.db.transaction() as tx:
            await self._existing_category(tx, cmd.category_id)
            product_id = await store.insert_product(
                tx, category_id=cmd.category_id, name=cmd.name, description=cmd.description,
                price_cents=cmd.price_cents, currency=cmd.currency, stock_quantity=cmd.stock_quantity,
                created_by=cmd.created_by)
            await store.replace_images(tx, product_id, cmd.images)
            view = await self._view(tx, product_id)
            await self.emit(tx, contract.PRODUCT_CREATED, product_id, product_event(view, version=1))
        return view

    @handles(UpdateProduct)
    async def update_product(self, cmd: UpdateProduct) -> ProductView:
        row = await self._live(self.db, cmd.id)
        domain.check_can_edit(cmd.actor_role, cmd.actor_id, row["created_by"])
        if cmd.category_id is not None:
            await self._existing_category(self.db, cmd.category_id)
        # Stock lives in the inventory service: it sets the number (or refuses, 409 below what is
        # reserved) before anything else changes; our copy follows its answer and its events.
        stock = await self._set_stock(cmd.id, cmd.stock_quantity) if cmd.stock_quantity is not None else None
        async with self.db.transaction() as tx:
            await self._live(tx, cmd.id)
            if stock is not None:
                await store.project_stock(tx, cmd.id, stock.totalQuantity, stock.version)
            fields = changed_columns(cmd)
            if fields:
                await store.update_product(tx, cmd.id, fields)
            if cmd.images is not None:
                await store.replace_images(tx, cmd.id, cmd.images)
            view = await self._view(tx, cmd.id)
            if fields or cmd.images is not None:
                version = await store.next_data_version(tx, cmd.id)
                await self.emit(tx, contract.PRODUCT_UPDATED, cmd.id, product_event(view, version))
        return view

    async def _set_stock(self, product_id: int, total: int) -> inventory.StockChanged:
        try:
            return await self.request("inventory", inventory.SetStockTotal(product_id=product_id,
                                                                           total_quantity=total))
        except NotFound:
            raise Conflict(f"Stock of product {product_id} is not set up yet; retry in a moment") from None

    @handles(DeleteProduct)
    async def delete_product(self, cmd: DeleteProduct) -> None:
        async with self.db.transaction() as tx:
            row = await self._live(tx, cmd.id)
            domain.check_can_edit(cmd.actor_role, cmd.actor_id, row["created_by"])
            if not await store.soft_delete(tx, cmd.id):
                raise NotFound(f"Product {cmd.id} not found")
            await self.emit(tx, contract.PRODUCT_DELETED, cmd.id, contract.ProductDeleted(id=cmd.id))
        # Close the gate every order passes (inventory's reservations) now, not when the event
        # arrives: an order placed right after the delete answered must be refused. If inventory
        # cannot hear us now, PRODUCT_DELETED closes it.
        try:
            await self.request("inventory", inventory.DiscontinueStock(product_id=cmd.id))
        except ServiceError as err:
            self.log.warning("stock of deleted product %s not discontinued now (%s); the event will do it",
                             cmd.id, err.message)

    # -- the stock projection -----------------------------------------------------------
    @on_event(inventory.STOCK_UPDATED, inventory.STOCK_CONFIRMED)
    async def stock_changed(self, tx: Executor, data: inventory.StockChanged, envelope: EventEnvelope) -> None:
        """Units on hand as inventory counts them (adjusted, or sold by a shipment)."""
        await store.project_stock(tx, data.productId, data.totalQuantity, data.version)

    @handles(GetProductView)
    async def get_product_view(self, cmd: GetProductView) -> ProductView:
        return await self._view(self.db, cmd.id)

    @handles(contract.GetProduct)
    async def get_product(self, cmd: contract.GetProduct) -> contract.ProductInfo:
        view = store.to_product(await self._live(self.db, cmd.id), [])
        return contract.ProductInfo(id=view.id, name=view.name, price=view.price, currency=view.currency,
                                    categoryId=view.categoryId)

    @handles(ListProducts)
    async def list_products(self, cmd: ListProducts) -> ProductPage:
        rows, total = await store.search_products(self.db, cmd.filter, cmd.page_size,
                                                  (cmd.page - 1) * cmd.page_size)
        images = await store.images_of(self.db, [int(row["id"]) for row in rows])
        items = [store.to_product(row, images[int(row["id"])]) for row in rows]
        return ProductPage(items=items, total=total, page=cmd.page, pageSize=cmd.page_size)

    @handles(CatalogSize)
    async def catalog_size(self, cmd: CatalogSize) -> CatalogCounts:
        return CatalogCounts(categories=await store.count_categories(self.db),
                             products=await store.count_live_products(self.db))

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    async def _live(db: Executor, product_id: int) -> dict[str, Any]:
        row = await store.live_product(db, product_id)
        if row is None:
            raise NotFound(f"Product {product_id} not found")
        return row

    @staticmethod
    async def _existing_category(db: Executor, category_id: int) -> None:
        if await store.category_by_id(db, category_id) is None:
            raise BadRequest(f"categoryId {category_id} does not exist")

    @classmethod
    async def _view(cls, db: Executor, product_id: int) -> ProductView:
        row = await cls._live(db, product_id)
        images = await store.images_of(db, [product_id])
        return store.to_product(row, images[product_id])


def changed_columns(cmd: UpdateProduct) -> dict[str, Any]:
    """The product columns a partial update sets (None = not given); stock is inventory's."""
    columns = {
        "category_id": cmd.category_id, "name": cmd.name, "description": cmd.description,
        "price_cents": cmd.price_cents, "currency": cmd.currency,
    }
    return {column: value for column, value in columns.items() if value is not None}
