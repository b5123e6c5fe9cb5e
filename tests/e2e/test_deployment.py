"""The per-service deployment for real: ten `microcommerce serve` processes on MariaDB and a
Kafka-protocol broker, the whole checkout through the gateway, then faults — a service killed
with `kill -9` mid-traffic, the broker stopped, a poison event, two replicas of one service.
Every assertion reads data back, not only status codes."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter

import aiohttp
import pymysql
import pytest
from kafka_broker import start_kafka_broker
from mc_deployment import Client, Deployment
from mc_process import CLI, ROOT
from mc_testkit import eventually

from microcommerce.services.payment.providers import ProviderLedger

pytestmark = pytest.mark.timeout(300)
CHANNELS = {"email", "sms", "push"}


@pytest.fixture(scope="module")
def broker():
    """A broker of this module's own: the deployment's groups read every topic from the start."""
    try:
        broker = start_kafka_broker()
    except RuntimeError as exc:
        pytest.fail(f"Kafka (Tansu) could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def deployment(broker, mysql_server_url, tmp_path_factory):
    deployment = Deployment(broker.url, mysql_server_url, tmp_path_factory.mktemp("deployment"))
    deployment.start_all()
    try:
        asyncio.run(deployment.wait_healthy())
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
async def client(deployment):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Client(deployment, session)


async def admin_token(client: Client) -> str:
    async def login():
        status, body = await client.call("POST", "/auth/login", json={"email": "ops@example.com",
                                                                      "password": "ops-password-1"})
        return body["token"] if status == 200 else None

    token = await eventually(login, timeout=30)

    async def authenticated():  # every process has loaded the token revocations by now
        return (await client.call("GET", "/auth/session", token=token))[0] == 200

    await eventually(authenticated, timeout=30)
    return token


async def new_shopper(client: Client) -> tuple[int, str]:
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    status, user = await client.call("POST", "/auth/signup", json={"name": "Shopper", "email": email,
                                                                   "password": "password123"})
    assert status == 201, user
    token = await client.login(email, "password123")

    async def cart_ready():
        return (await client.call("GET", "/carts/me", token=token))[0] == 200

    await eventually(cart_ready, timeout=20)  # USER_CREATED crossed Kafka to the cart process
    return user["id"], token


async def new_product(client: Client, admin: str, *, stock: int = 10, price: float = 12.5) -> int:
    name = f"Lamp {uuid.uuid4().hex[:6]}"
    status, category = await client.call("POST", "/categories", token=admin, json={"name": f"Cat {name}"})
    assert status == 201, category
    status, product = await client.call("POST", "/products", token=admin, json={
        "categoryId": category["id"], "name": name, "price": price, "stockQuantity": stock})
    assert status == 201, product

    async def stocked():
        status, level = await client.call("GET", f"/inventory/{product['id']}")
        return status == 200 and level["availableQuantity"] == stock

    await eventually(stocked, timeout=20)  # PRODUCT_CREATED crossed Kafka to inventory
    return product["id"]


async def test_a_whole_checkout_across_ten_processes(client):
    admin = await admin_token(client)
    product = await new_product(client, admin, stock=10, price=12.5)
    user_id, token = await new_shopper(client)

    status, cart = await client.call("POST", "/carts/me/items", token=token,
                                     json={"productId": product, "quantity": 2})
    assert status in (200, 201), cart  # the cart asked the product process over HTTP
    status, order = await client.call("POST", "/orders/me", token=token, json={"productId": product})
    assert status == 201 and order["status"] == "pending", order
    status, payment = await client.call("POST", f"/payments/me/orders/{order['id']}/charge", token=token,
                                        json={"provider": "stripe", "paymentToken": "tok_visa"})
    assert status == 201 and payment["status"] == "succeeded" and payment["amount"] == 25.0, payment

    async def paid():
        status, body = await client.call("GET", f"/orders/{order['id']}", token=token)
        return status == 200 and body["status"] == "paid"

    await eventually(paid, timeout=20)

    async def notified():
        _, body = await client.call("GET", "/notifications/me", token=token)
        return {n["channel"] for n in body["notifications"] if n["type"] == "PAYMENT_SUCCEEDED"} == CHANNELS

    await eventually(notified, timeout=20)

    async def indexed():
        _, level = await client.call("GET", f"/inventory/{product}")
        _, found = await client.call("GET", "/search/products?inStock=true&pageSize=100")
        hits = [item for item in found["items"] if item["id"] == product]
        return level["reservedQuantity"] == 2 and hits

    await eventually(indexed, timeout=20)

    async def audited():
        _, logs = await client.call("GET", "/audit/logs?eventType=PAYMENT_SUCCEEDED&limit=200", token=admin)
        return [item for item in logs["items"] if json.loads(item["payload"])["orderId"] == order["id"]]

    assert len(await eventually(audited, timeout=20)) == 1


async def test_kill_9_of_a_service_loses_no_event_and_the_gateway_fails_fast(deployment, client):
    """The notification process dies mid signup burst; the cart process too. Every acknowledged
    signup still gets its cart and one welcome per channel; while they were down, the gateway
    answered their routes quickly with 503/504 instead of hanging."""
    admin = await admin_token(client)
    acknowledged: dict[str, int] = {}
    counter = itertools.count()
    stop = asyncio.Event()

    async def shopper():
        while not stop.is_set():
            email = f"burst-{uuid.uuid4().hex[:6]}-{next(counter)}@example.com"
            try:
                status, body = await client.call("POST", "/auth/signup", json={
                    "name": "Burst", "email": email, "password": "password123"})
            except (aiohttp.ClientError, TimeoutError):
                continue
            if status == 201:
                acknowledged[email] = body["id"]

    burst = [asyncio.create_task(shopper()) for _ in range(8)]
    await asyncio.sleep(1.0)
    for service in ("notification", "cart"):
        deployment.kill9(deployment.process_of(service))
    # While the cart process is down its routes answer fast, not hang.
    # A hung request would outlive the per-service timeout (4 s) and trip this client's deadline.
    async with client.session.get(deployment.url() + "/carts/me", headers={"Authorization": f"Bearer {admin}"},
                                  timeout=aiohttp.ClientTimeout(total=6)) as resp:
        assert resp.status in (503, 504)
    await asyncio.sleep(1.0)
    restarted = [deployment.start(service) for service in ("notification", "cart")]
    await deployment.wait_healthy(*restarted)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*burst)
    assert len(acknowledged) > 20

    async def converged():
        for user_id in acknowledged.values():
            status, _ = await client.call("GET", f"/carts/{user_id}", token=admin)
            if status != 200:
                return False
            _, body = await client.call("GET", f"/notifications/user/{user_id}", token=admin)
            welcomes = sorted(n["channel"] for n in body["notifications"] if n["type"] == "USER_CREATED")
            if welcomes != sorted(CHANNELS):  # exactly one per channel: none lost, none twice
                return False
        return True

    await eventually(converged, timeout=60, interval=1)


async def test_kill_9_of_the_payment_process_mid_checkout_takes_no_money_twice(deployment, client):
    """Shoppers pay (retrying with their Idempotency-Key, as a client would) while the payment
    process is killed and restarted. Every acknowledged payment is there and succeeded, its
    order ends paid with exactly one succeeded payment, and the provider's books agree."""
    admin = await admin_token(client)
    product = await new_product(client, admin, stock=1000, price=3.0)
    shoppers = [await new_shopper(client) for _ in range(6)]
    acknowledged: dict[int, int] = {}  # order id -> payment id
    stop = asyncio.Event()

    async def pay_in_a_loop(token: str) -> None:
        while not stop.is_set():
            status, _ = await client.call("POST", "/carts/me/items", token=token,
                                          json={"productId": product, "quantity": 1})
            status, order = await client.call("POST", "/orders/me", token=token, json={"productId": product})
            if status != 201:
                await asyncio.sleep(0.05)
                continue
            key = uuid.uuid4().hex
            for _ in range(100):  # retry through the outage with the same key
                try:
                    async with client.session.post(
                            f"{client.deployment.url()}/payments/me/orders/{order['id']}/charge",
                            json={"provider": "stripe", "paymentToken": "tok_visa"},
                            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key}) as resp:
                        body = await resp.json(content_type=None)
                        if resp.status == 201:
                            acknowledged[order["id"]] = body["id"]
                            break
                        if resp.status not in (409, 503, 504):
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)

    loops = [asyncio.create_task(pay_in_a_loop(token)) for _, token in shoppers]
    await asyncio.sleep(1.5)
    deployment.kill9(deployment.process_of("payment"))
    await asyncio.sleep(1.0)
    await deployment.wait_healthy(deployment.start("payment"))
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.gather(*loops)
    assert len(acknowledged) >= 6

    async def settled():
        for order_id in acknowledged:
            _, order = await client.call("GET", f"/orders/{order_id}", token=admin)
            if order["status"] != "paid":
                return False
        return True

    await eventually(settled, timeout=40, interval=0.5)
    with pymysql.connect(host="127.0.0.1", port=3306, user="root", database=f"{deployment.run}_payment") as db, \
            db.cursor() as cur:
        cur.execute("SELECT order_id, id, status, idempotency_key FROM payments")
        rows = cur.fetchall()
    succeeded = Counter(order_id for order_id, _, status, _ in rows if status == "succeeded")
    for order_id, payment_id in acknowledged.items():
        assert succeeded[order_id] == 1, (order_id, [r for r in rows if r[0] == order_id])
        assert (order_id, payment_id) in {(r[0], r[1]) for r in rows if r[2] == "succeeded"}
    ledger = ProviderLedger(f"sqlite:///{deployment.log_dir / 'data' / 'providers.sqlite'}")
    try:
        charged = Counter(charge.idempotencyKey for charge in ledger.charges() if charge.succeeded)
    finally:
        ledger.close()
    keys = {key: status for _, _, status, key in rows}
    assert all(n == 1 for n in charged.values())  # no key charged twice
    assert all(keys.get(key) in ("succeeded", "refunded") for key in charged), "money without a payment"


async def test_writes_are_accepted_while_the_broker_is_stopped_and_flow_once_it_is_back(
        deployment, client, broker):
    admin = await admin_token(client)
    broker.pause()
    try:
        status, user = await client.call("POST", "/auth/signup", json={
            "name": "Offline", "email": f"offline-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"})
        assert status == 201, user  # committed with its event in the outbox
        await asyncio.sleep(3)
    finally:
        broker.resume()

    async def cart_created():
        return (await client.call("GET", f"/carts/{user['id']}", token=admin))[0] == 200

    await eventually(cart_created, timeout=40, interval=0.5)


def _cart_db(deployment: Deployment) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True,
                           database=f"{deployment.run}_cart")


async def test_a_poison_event_is_parked_listed_and_redriven_once(deployment, client):
    admin = await admin_token(client)
    with _cart_db(deployment) as db, db.cursor() as cur:
        cur.execute("RENAME TABLE carts TO carts_broken")  # the cause: the cart process cannot write
    try:
        status, user = await client.call("POST", "/auth/signup", json={
            "name": "Poison", "email": f"poison-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"})
        assert status == 201
        db_flags = ["--db", deployment.env["DATABASE_URL"], "--service", "cart"]

        async def listed():
            proc = await asyncio.create_subprocess_exec(
                *CLI, "dlq", "list", "--json", *db_flags, cwd=ROOT, env=deployment.env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            letters = [json.loads(line) for line in out.decode().splitlines()]
            return [x for x in letters if json.loads(x["payload"])["data"]["id"] == user["id"]]

        [letter] = await eventually(listed, timeout=40, interval=1)
        assert letter["status"] == "parked" and letter["eventType"] == "USER_CREATED"
    finally:
        with _cart_db(deployment) as db, db.cursor() as cur:
            cur.execute("RENAME TABLE carts_broken TO carts")  # the operator removes the cause

    for _ in range(2):  # redriving twice applies once
        proc = await asyncio.create_subprocess_exec(
            *CLI, "dlq", "redrive", "--all", *db_flags, cwd=ROOT, env=deployment.env,
            stdout=asyncio.subprocess.PIPE)
        await proc.communicate()
        assert proc.returncode == 0

    async def redriven():
        status, _ = await client.call("GET", f"/carts/{user['id']}", token=admin)
        return status == 200 and (await listed())[0]["status"] == "redriven"

    await eventually(redriven, timeout=30, interval=0.5)
    with _cart_db(deployment) as db, db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM carts WHERE user_id = %s", (user["id"],))
        assert cur.fetchone()[0] == 1


async def test_two_replicas_of_the_cart_service_share_the_work_without_duplicates(deployment, client):
    admin = await admin_token(client)
    replica = deployment.start("cart", port=deployment.ports["cart"] + 1000 if deployment.ports["cart"] < 64000
                               else deployment.ports["cart"] - 1000)
    await deployment.wait_healthy(replica)
    await asyncio.sleep(8)  # the group rebalances onto both members
    users = [await client.call("POST", "/auth/signup", json={
        "name": "Replica", "email": f"replica-{uuid.uuid4().hex[:6]}-{i}@example.com", "password": "password123"})
        for i in range(40)]
    assert all(status == 201 for status, _ in users)

    async def all_carts():
        for _, user in users:
            if (await client.call("GET", f"/carts/{user['id']}", token=admin))[0] != 200:
                return False
        return True

    await eventually(all_carts, timeout=40, interval=0.5)
    with _cart_db(deployment) as db, db.cursor() as cur:
        ids = [user["id"] for _, user in users]
        cur.execute(f"SELECT user_id, COUNT(*) FROM carts WHERE user_id IN ({', '.join(['%s'] * len(ids))}) "
                    "GROUP BY user_id", ids)
        assert all(count == 1 for _, count in cur.fetchall())
    consumed = []
    for process in (deployment.process_of("cart"), replica):
        async with client.session.get(deployment.url(port=process.port) + "/metrics") as resp:
            text = await resp.text()
        consumed.append(sum(float(line.split()[-1]) for line in text.splitlines()
                            if line.startswith("kafka_consumed_total")))
    assert all(n > 0 for n in consumed), consumed  # both replicas applied some of the events
