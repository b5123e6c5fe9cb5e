"""Hostile numbers, bodies and bytes: a clear 400 JSON at the edge, and the service stays up.

`GET /products?page=9223372036854775807` used to overflow SQLite while binding (a crash that
counted toward the supervisor's restart intensity: repeated, it took the product service down).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from microcommerce.errors import InvalidInput
from microcommerce.storage import open_database

ALL = ["gateway", "user", "cart", "order", "product", "inventory", "search", "payment",
       "notification", "audit"]
INT64_MAX = "9223372036854775807"
HUGE = "99999999999999999999999"


@pytest.fixture
async def shop(make_platform):
    platform = await make_platform(ALL)
    admin = await platform.admin_token()
    user, token = await platform.new_user()
    return platform, admin, user, token


def assert_400(reply, *needles: str) -> None:
    assert reply.status == 400, reply
    assert isinstance(reply.body, dict) and isinstance(reply.body.get("message"), str), reply
    for needle in needles:
        assert needle in reply.body["message"], reply


async def test_huge_product_pages_are_400_and_the_service_survives_twenty_in_a_row(shop):
    platform, *_ = shop
    for n in range(20):
        query = ["page=" + INT64_MAX, "pageSize=" + INT64_MAX, "page=" + HUGE, "page=1000001"][n % 4]
        assert_400(await platform.get(f"/products?{query}"), query.split("=")[0])
    product = platform.system("product")
    assert product.restarts_total() == 0  # refused at the edge: nothing crashed
    assert (await platform.get("/health", service="product")).status == 200
    assert (await platform.get("/health")).status == 200
    listing = await platform.get("/products?page=2&pageSize=5")
    assert listing.status == 200 and (listing.body["page"], listing.body["pageSize"]) == (2, 5)


# Every paged or numeric query parameter of every route, as (path, parameter).
NUMERIC_QUERIES = [
    ("/products", "page"), ("/products", "pageSize"), ("/products", "categoryId"),
    ("/products", "minPrice"), ("/products", "maxPrice"),
    ("/search/products", "page"), ("/search/products", "pageSize"), ("/search/products", "categoryId"),
    ("/search/products", "minPrice"), ("/search/products", "maxPrice"),
    ("/audit/logs", "page"), ("/audit/logs", "limit"), ("/audit/logs", "actorUserId"),
    ("/audit/logs", "httpStatus"), ("/audit/logs/me", "page"), ("/audit/logs/me", "limit"),
    ("/orders/me", "limit"), ("/orders/me", "offset"), ("/orders/user/{uid}", "limit"),
    ("/orders/user/{uid}", "offset"), ("/payments/me", "limit"), ("/payments/me", "offset"),
    ("/auth/users", "limit"), ("/auth/users", "offset"), ("/notifications/me", "limit"),
    ("/notifications/user/{uid}", "limit"), ("/notifications/dev/outbox", "limit"),
]


@pytest.mark.parametrize("value", [INT64_MAX, HUGE, "-1", "1e308"])
async def test_every_numeric_query_parameter_out_of_range_is_400_naming_it(shop, value):
    platform, admin, user, _ = shop
    for path, name in NUMERIC_QUERIES:
        if value == INT64_MAX and name in ("categoryId", "actorUserId"):
            continue  # a valid (if unknown) id
        reply = await platform.get(f"{path.format(uid=user['id'])}?{name}={value}", token=admin)
        assert_400(reply, name)
    for name in ALL:
        if name != "gateway":
            assert platform.system(name).restarts_total() == 0, name


async def test_ids_beyond_64_bits_in_paths_are_400(shop):
    platform, admin, *_ = shop
    for path in ["/products/9223372036854775808", "/users/9223372036854775808", "/orders/" + HUGE,
                 "/inventory/" + HUGE, "/payments/" + HUGE, "/carts/" + HUGE]:
        assert_400(await platform.get(path, token=admin), "must be a positive integer")


async def test_hostile_numbers_in_bodies_are_400(shop):
    platform, admin, _, token = shop
    category = (await platform.post("/categories", json={"name": "Mugs"}, token=admin)).body
    product = {"categoryId": category["id"], "name": "Mug", "price": 5, "stockQuantity": 3}
    cases = [
        ("POST", "/products", admin, {**product, "price": 1e308}, "price"),
        ("POST", "/products", admin, {**product, "price": -1}, "price"),
        ("POST", "/products", admin, {**product, "stockQuantity": 10**30}, "stockQuantity"),
        ("POST", "/products", admin, {**product, "stockQuantity": 2**40}, "stockQuantity"),
        ("POST", "/products", admin, {**product, "categoryId": -3}, "categoryId"),
        ("PUT", "/inventory/1/stock", admin, {"totalQuantity": 2**40}, "totalQuantity"),
        ("PUT", "/inventory/1/stock", admin, {"totalQuantity": -1}, "totalQuantity"),
        ("POST", "/carts/me/items", token, {"productId": 1, "quantity": -5}, "quantity"),
        ("POST", "/carts/me/items", token, {"productId": 10**19, "quantity": 1}, "out of range"),
        ("PATCH", "/carts/me/items/1", token, {"quantity": 1e308}, "quantity"),
        ("POST", "/orders/me", token, {"productId": 1, "quantity": 2**40}, "quantity"),
        ("POST", "/orders/me", token, {"productId": 1, "quantity": 0}, "quantity"),
    ]
    for method, path, who, body, needle in cases:
        assert_400(await platform.request(method, path, token=who, json=body), needle)
    # JSON has no NaN or Infinity; a body spelling them is malformed, not a number.
    for raw in (b'{"quantity": NaN}', b'{"quantity": Infinity}', b'{"quantity": 1e400}'):
        reply = await platform.request("PATCH", "/carts/me/items/1", token=token, data=raw,
                                       headers={"Content-Type": "application/json"})
        assert reply.status == 400, (raw, reply)
    internal = {"X-Internal-Token": platform.settings.internal_token}
    reply = await platform.post("/internal/reservations", service="inventory", headers=internal,
                                json={"orderId": 1, "productId": 1, "quantity": 2**40})
    assert_400(reply, "quantity")


# -- raw bytes over a socket: what aiohttp's client refuses to send ---------------------------


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + (b"Content-Length: %d\r\n" % len(body) if body else b"")
                     + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), data
    return int(status_line.split()[1]), json.loads(payload)


DEEP = b'{"email": "a@example.com", "password": "x", "extra": ' + b"[" * 1000 + b"]" * 1000 + b"}"


@pytest.mark.parametrize("service", ["gateway", "user"])
async def test_deep_json_and_non_utf8_header_bytes_are_400_json(make_platform, service):
    platform = await make_platform(["gateway", "user", "product"])
    port = platform.settings.port_of(service)
    status, body = await raw_request(port, b"POST /auth/login HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: application/json\r\n", DEEP)
    assert (status, body) == (400, {"message": "JSON body nested deeper than 32 levels"})
    for header in (b"X-Foo: \xff", b"Authorization: Bearer abc\xffdef", b"X-Request-Id: \xfe\xff"):
        status, body = await raw_request(port, b"GET /auth/session HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
        assert status == 400, (header, body)
        assert body["message"].startswith("Header ") and "not valid UTF-8" in body["message"], body
    # Valid UTF-8 beyond ASCII is fine, and the service is still up.
    status, body = await raw_request(port, "GET /health HTTP/1.1\r\nHost: x\r\nX-Foo: café\r\n".encode())
    assert status == 200, body
    assert platform.system("user").restarts_total() == 0


async def test_a_body_just_under_the_depth_limit_is_decoded(make_platform):
    platform = await make_platform(["gateway", "user", "payment"])
    nested = 1
    for _ in range(29):
        nested = [nested]
    _, token = await platform.new_user()
    reply = await platform.post("/payments/me/orders/424242/charge", token=token,
                                json={"metadata": {"deep": nested}})
    assert reply.status not in (400, 500), reply  # decoded; the unknown order is the problem


# -- the storage safety net: a value the database refuses is the client's error --------------


async def test_sqlite_refuses_an_int_beyond_64_bits_as_invalid_input():
    db = open_database("sqlite://memory/hostile-overflow")
    await db.connect()
    try:
        await db.execute("CREATE TABLE t (n INTEGER)")
        with pytest.raises(InvalidInput) as info:
            await db.fetch_one("SELECT * FROM t WHERE n = ?", 2**64)
        assert info.value.status == 400
        with pytest.raises(InvalidInput):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t (n) VALUES (?)", 2**63)
        assert await db.fetch_all("SELECT * FROM t") == []
    finally:
        await db.close()


async def test_mariadb_refuses_out_of_range_and_too_long_values_as_invalid_input(mysql_db_url):
    db = open_database(mysql_db_url)
    await db.connect()
    try:
        await db.execute("CREATE TABLE t (n INTEGER, s VARCHAR(5), d DECIMAL(4,2))")
        for sql, value, problem in [
            ("INSERT INTO t (n) VALUES (?)", 2**40, "out of range"),
            ("INSERT INTO t (s) VALUES (?)", "far too long", "too long"),
            ("INSERT INTO t (n) VALUES (?)", "not a number", "wrong format"),
            ("INSERT INTO t (d) VALUES (?)", 123456, "out of range"),
        ]:
            with pytest.raises(InvalidInput) as info:
                async with db.transaction() as tx:
                    await tx.execute(sql, value)
            assert info.value.status == 400 and problem in info.value.message, (sql, value)
        assert await db.fetch_all("SELECT * FROM t") == []
    finally:
        await db.close()
