"""The five invariants, each judged from the history and a final read of every service's data.

A snapshot is `{service: {table: [row, ...]}}` plus `"provider": {"charges": [...], "refunds": [...]}`
and `"healed": bool` (did every outbox drain and every mailbox empty before the read?).
Each checker returns `{"valid": True | False | "unknown", "counterexample": ..., "problems": n}`:
the counterexample is the smallest thing it can name (ids included); "unknown" when the system
had not healed, so a missing projection may only be late.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import cache
from typing import Any

from microcommerce.contracts import inventory as inventory_events
from microcommerce.contracts import order as order_events
from microcommerce.contracts import payment as payment_events
from microcommerce.contracts import user as user_events
from microcommerce.contracts.audit import HTTP_ACTIVITY
from microcommerce.contracts.money import to_cents
from microcommerce.services import implemented_services, load_spec
from microcommerce.services.notification.domain import channels_for
from microcommerce.services.payment.books import BookedPayment, disagreements
from microcommerce.services.payment.providers import LedgerCharge, LedgerRefund

Snapshot = dict[str, Any]
Completion = dict[str, Any]
Checker = Callable[[list[Completion], Snapshot], dict[str, Any]]

HOLDING = ("paid", "shipped", "delivered")  # statuses that keep the order's money
NOTIFIED_EVENTS = frozenset({
    user_events.USER_CREATED, user_events.PASSWORD_RESET_REQUESTED,
    order_events.ORDER_CREATED, order_events.ORDER_PAID, order_events.ORDER_SHIPPED,
    order_events.ORDER_DELIVERED, order_events.ORDER_CANCELLED,
    payment_events.PAYMENT_SUCCEEDED, payment_events.PAYMENT_FAILED, payment_events.PAYMENT_REFUNDED,
})
LATER_STATUSES = {"shipped": {"shipped", "delivered", "refunded"}, "delivered": {"delivered", "refunded"},
                  "cancelled": {"cancelled"}}


def verdict(problems: list[Any], *, unknown_reason: str | None = None) -> dict[str, Any]:
    if problems:
        if unknown_reason:
            return {"valid": "unknown", "counterexample": {"reason": unknown_reason, "first": problems[0]},
                    "problems": len(problems)}
        return {"valid": False, "counterexample": problems[0], "problems": len(problems)}
    return {"valid": True, "counterexample": None, "problems": 0}


def _rows(snapshot: Snapshot, service: str, table: str) -> list[dict[str, Any]]:
    return snapshot.get(service, {}).get(table, [])


# -- 1. stock ------------------------------------------------------------------------------------
def check_stock(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    """Per product: on hand = available + reserved, none negative; reserved and sold equal the
    product's reservations (reserved / confirmed); every held order holds its units."""
    reservations: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(snapshot, "inventory", "reservations"):
        reservations[int(r["product_id"])].append(r)
    problems = []
    for row in _rows(snapshot, "inventory", "stock"):
        pid = int(row["product_id"])
        total, reserved, sold = int(row["total_quantity"]), int(row["reserved_quantity"]), int(row["sold_quantity"])
        ledger = {"onHand": total, "available": total - reserved, "reserved": reserved, "sold": sold}
        held = sum(int(r["quantity"]) for r in reservations[pid] if r["status"] == "reserved")
        confirmed = sum(int(r["quantity"]) for r in reservations[pid] if r["status"] == "confirmed")
        what = None
        if min(total, reserved, sold) < 0 or total - reserved < 0:
            what = "oversold: a quantity is negative"
        elif reserved != held:
            what = f"reserved {reserved} but its reserved reservations hold {held}"
        elif sold != confirmed:
            what = f"sold {sold} but its confirmed reservations hold {confirmed}"
        if what:
            problems.append({"product": pid, "problem": what, "ledger": ledger,
                             "reservations": [{"id": r["id"], "order": r["order_id"], "quantity": r["quantity"],
                                               "status": r["status"]} for r in reservations[pid]]})
    problems += _stock_ledger_problems(snapshot)
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rs in reservations.values():
        for r in rs:
            by_order[int(r["order_id"])].append(r)
    for order in _rows(snapshot, "order", "orders"):
        oid, status = int(order["id"]), order["status"]
        statuses = sorted({r["status"] for r in by_order.get(oid, [])})
        if status in ("shipped", "delivered") and statuses != ["confirmed"]:
            problems.append({"order": oid, "status": status, "problem": "shipped without its stock sold",
                             "reservations": statuses})
        elif status == "paid" and not set(statuses) <= {"reserved", "confirmed"}:
            problems.append({"order": oid, "status": status, "problem": "paid without its stock held",
                             "reservations": statuses})
        elif status == "cancelled" and "reserved" in statuses:
            problems.append({"order": oid, "status": status, "problem": "cancelled but its stock is still held",
                             "reservations": statuses})
    return verdict(problems)


LEVELS = (("total_quantity", "totalQuantity"), ("reserved_quantity", "reservedQuantity"),
          ("sold_quantity", "soldQuantity"))


def _stock_ledger_problems(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Per product, against inventory's own STOCK_* events (contracts/inventory.py):

    - total (units on hand) + sold = the stock put in, the sum of STOCK_UPDATED quantities: a
      sale takes units off the shelf, so a sale that leaves them on hand sells them twice;
    - the row's version is the highest any event announced, with that event's levels: every
      change of the row is announced, and a projection keeping the highest version shows the row.
    """
    stock_in: dict[int, int] = defaultdict(int)
    latest: dict[int, dict[str, Any]] = {}
    for event in outbox_events(snapshot):
        if event["service"] != "inventory" or not event["eventType"].startswith("STOCK_"):
            continue
        data = event["data"]
        pid = int(data["productId"])
        if event["eventType"] == inventory_events.STOCK_UPDATED:
            stock_in[pid] += int(data.get("quantity", 0))
        if pid not in latest or int(data.get("version", 0)) > int(latest[pid]["data"].get("version", 0)):
            latest[pid] = event
    problems: list[dict[str, Any]] = []
    for row in _rows(snapshot, "inventory", "stock"):
        pid = int(row["product_id"])
        levels = {field: int(row[column]) for column, field in LEVELS}
        on_hand_and_sold = levels["totalQuantity"] + levels["soldQuantity"]
        if on_hand_and_sold != stock_in[pid]:
            problems.append({"product": pid, "problem": f"on hand + sold is {on_hand_and_sold} but "
                             f"{stock_in[pid]} units were put in stock (STOCK_UPDATED)", "levels": levels})
            continue
        event = latest.get(pid)
        announced = {field: int(event["data"].get(field, 0)) for _, field in LEVELS} if event else None
        version = int(event["data"].get("version", 0)) if event else None
        if (version, announced) != (int(row["version"]), levels):
            problems.append({"product": pid, "problem": "the stock row is not what its latest event announced",
                             "row": {**levels, "version": int(row["version"])},
                             "event": event and event["eventId"], "announced": {**(announced or {}),
                                                                                "version": version}})
    return problems


# -- 2. payments -----------------------------------------------------------------------------
def check_payments(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    payments = _rows(snapshot, "payment", "payments")
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in payments:
        by_order[int(p["order_id"])].append(p)

    def brief(p: dict[str, Any]) -> dict[str, Any]:
        return {"id": p["id"], "status": p["status"], "amountCents": p["amount_cents"],
                "providerPaymentId": p["provider_payment_id"]}

    problems: list[Any] = []
    for order in _rows(snapshot, "order", "orders"):
        oid, status = int(order["id"]), order["status"]
        live = [p for p in by_order.get(oid, []) if p["status"] == "succeeded"]
        theirs = [brief(p) for p in by_order.get(oid, [])]
        if status in HOLDING:
            if len(live) != 1:
                problems.append({"order": oid, "status": status, "totalCents": order["total_cents"],
                                 "problem": f"{len(live)} succeeded unrefunded payments", "payments": theirs})
            elif int(live[0]["amount_cents"]) != int(order["total_cents"]):
                problems.append({"order": oid, "status": status, "totalCents": order["total_cents"],
                                 "problem": "paid a different amount", "payments": theirs})
        elif live:
            problems.append({"order": oid, "status": status, "problem": f"{status} order keeps its money",
                             "payments": theirs})
    booked = [BookedPayment(id=int(p["id"]), orderId=int(p["order_id"]), provider=p["provider"], status=p["status"],
                            amountCents=int(p["amount_cents"]), providerPaymentId=p["provider_payment_id"],
                            idempotencyKey=p["idempotency_key"]) for p in payments]
    provider = snapshot.get("provider", {})
    charges = [LedgerCharge(**c) for c in provider.get("charges", [])]
    refunds = [LedgerRefund(**r) for r in provider.get("refunds", [])]
    problems += [{"problem": "provider books disagree", "detail": line}
                 for line in disagreements(charges, refunds, booked, settled=snapshot.get("healed", True))]
    problems += _charged_twice(payments, charges, brief)
    return verdict(problems)


def _charged_twice(payments: list[dict[str, Any]], charges: list[LedgerCharge],
                   brief: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders the provider captured money for more than once, refunded later or not.

    docs/payments.md: a charge of an order already paid is refused before the provider hears
    of it; only two payment processes racing can both charge (and the second is refunded). A
    chaos run has one payment process, so a second capture is a charge that should never have
    been sent. Declined charges move no money and are not counted: a decline retried with
    another card is one capture.
    """
    payment_of = {(p["provider"], p["idempotency_key"]): p for p in payments if p["idempotency_key"]}
    captured: dict[int, list[tuple[LedgerCharge, dict[str, Any]]]] = defaultdict(list)
    for charge in charges:
        payment = payment_of.get((charge.provider, charge.idempotencyKey))
        if charge.succeeded and payment is not None:  # a charge without its record is a disagreement
            captured[int(payment["order_id"])].append((charge, payment))
    return [{"order": oid, "problem": f"captured {len(taken)} times at the provider",
             "charges": [charge.chargeId for charge, _ in taken], "payments": [brief(p) for _, p in taken]}
            for oid, taken in sorted(captured.items()) if len(taken) > 1]


# -- 2b. order lifecycle -------------------------------------------------------------------------
# The order status machine as the API promises it (admin transitions, the owner's cancel of a
# pending order, expiry, refunds), written out here rather than imported so a wrong rule in the
# service cannot vouch for itself.
LIFECYCLE = {("", "pending"), ("pending", "paid"), ("pending", "cancelled"), ("paid", "shipped"),
             ("paid", "cancelled"), ("shipped", "delivered"), ("shipped", "refunded"), ("delivered", "refunded")}
ORDER_EVENT_STATUS = {order_events.ORDER_CREATED: "pending", order_events.ORDER_PAID: "paid",
                      order_events.ORDER_SHIPPED: "shipped", order_events.ORDER_DELIVERED: "delivered",
                      order_events.ORDER_CANCELLED: "cancelled", order_events.ORDER_REFUNDED: "refunded"}


def check_lifecycle(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    """Every order's committed ORDER_* events form one legal path from "" to its stored status,
    each announcing the change it made; its total is the sum of its lines; an owner's cancel that
    was answered 2xx cancelled a pending order."""
    changes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in outbox_events(snapshot):
        if event["service"] == "order" and event["eventType"] in ORDER_EVENT_STATUS:
            changes[int(event["data"]["id"])].append(event)
    lines: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line in _rows(snapshot, "order", "order_items"):
        lines[int(line["order_id"])].append(line)
    prices = _prices_ever(snapshot)
    problems: list[Any] = []
    orders = {int(o["id"]): o for o in _rows(snapshot, "order", "orders")}
    def path(oid: int) -> list[tuple[str, str]]:
        return [(e["data"].get("previousStatus", ""), e["data"]["status"]) for e in changes.get(oid, [])]

    for oid, order in sorted(orders.items()):
        where = {"order": oid, "status": order["status"], "path": path(oid),
                 "events": [e["eventId"] for e in changes.get(oid, [])]}
        wrong = _path_problem(order["status"], changes.get(oid, []))
        if wrong:
            problems.append({**where, "problem": wrong})
        total = int(order["total_cents"])
        summed = sum(int(li["line_total_cents"]) for li in lines.get(oid, []))
        bad_line = next((li for li in lines.get(oid, [])
                         if int(li["unit_price_cents"]) * int(li["quantity"]) != int(li["line_total_cents"])), None)
        if bad_line is not None:
            problems.append({**where, "problem": "a line total is not its unit price times its quantity",
                             "line": {k: bad_line[k] for k in ("product_id", "quantity", "unit_price_cents",
                                                               "line_total_cents")}})
        elif lines.get(oid) and summed != total:
            problems.append({**where, "problem": f"total {total} cents but its lines sum to {summed}"})
        unpriced = next((li for li in lines.get(oid, []) if prices is not None
                         and int(li["unit_price_cents"]) not in prices.get(int(li["product_id"]), ())), None)
        if unpriced is not None:
            pid = int(unpriced["product_id"])
            problems.append({**where, "problem": f"a line's unit price was never product {pid}'s price",
                             "line": {k: unpriced[k] for k in ("product_id", "quantity", "unit_price_cents")},
                             "prices": sorted((prices or {}).get(pid, ()))})
        announced = {round(float(e["data"]["totalAmount"]) * 100) for e in changes.get(oid, [])}
        if announced - {total}:
            problems.append({**where, "problem": f"events announce totals {sorted(announced)}, stored {total}"})
    for op in history:
        if op["op"] == "cancel" and op["type"] == "ok":
            oid = int(op["args"]["orderId"])
            cancels = [e for e in changes.get(oid, []) if e["data"]["status"] == "cancelled"]
            if not cancels or cancels[0]["data"].get("previousStatus") != "pending":
                problems.append({"order": oid, "op": op["index"], "process": op["process"],
                                 "problem": "the owner's cancel was acknowledged but no pending order was cancelled",
                                 "path": path(oid)})
    return verdict(problems)


def _prices_ever(snapshot: Snapshot) -> dict[int, set[int]] | None:
    """Product id -> every price in cents it had: the current one and every one a committed
    PRODUCT_* event announced (an order keeps the price of the moment it was placed). None when
    the product service was not read: then no price is judged."""
    if "product" not in snapshot:
        return None
    prices: dict[int, set[int]] = defaultdict(set)
    for product in _rows(snapshot, "product", "products"):
        prices[int(product["id"])].add(int(product["price_cents"]))
    for event in outbox_events(snapshot):
        data = event["data"]
        if event["service"] == "product" and isinstance(data, dict) and "price" in data:
            prices[int(data["id"])].add(to_cents(data["price"]))
    return prices


def _path_problem(stored: str, events: list[dict[str, Any]]) -> str | None:
    """What is wrong with one order's announced changes, or None."""
    status = ""
    for event in events:
        data = event["data"]
        before, after = data.get("previousStatus", ""), data["status"]
        if ORDER_EVENT_STATUS[event["eventType"]] != after:
            return f"{event['eventType']} announces status {after}"
        if before != status:
            return f"{event['eventType']} says it left {before or 'nothing'}, the order was {status or 'new'}"
        if (before, after) not in LIFECYCLE:
            return f"illegal change {before or 'new'} -> {after}"
        status = after
    if stored in ("reserving", "failed"):  # internal: never announced
        return f"internal status {stored} but announced as {status}" if status else None
    if stored != status:
        return f"stored {stored} but its events end at {status or 'nothing'}"
    return None


# -- 3. acknowledged writes ----------------------------------------------------------------------
def _user_of_process(history: list[Completion], snapshot: Snapshot) -> dict[str, int]:
    """Which user each client process signed up or logged in as."""
    user_of: dict[str, int] = {}
    for op in history:
        if op["op"] in ("signup", "login") and op["type"] == "ok":
            body = op["result"]["body"] or {}
            if isinstance(body, dict) and "id" in body:
                user_of[op["process"]] = int(body["id"])
    ids_by_email = {u["email"]: int(u["id"]) for u in _rows(snapshot, "user", "users")}
    for op in history:  # login answers carry no id in their scalar fields: match by email
        if op["op"] == "login" and op["args"].get("email") in ids_by_email:
            user_of.setdefault(op["process"], ids_by_email[op["args"]["email"]])
    return user_of


def check_acknowledged(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    users = {int(u["id"]): u for u in _rows(snapshot, "user", "users")}
    orders = {int(o["id"]): o for o in _rows(snapshot, "order", "orders")}
    payments = {int(p["id"]): p for p in _rows(snapshot, "payment", "payments")}
    stock = {int(s["product_id"]) for s in _rows(snapshot, "inventory", "stock")}
    problems = []
    for op in history:
        if op["type"] != "ok":
            continue
        body = op["result"]["body"] if isinstance(op["result"]["body"], dict) else {}
        missing = None
        name = op["op"]
        if name == "signup" and int(body.get("id", -1)) not in users:
            missing = f"user {body.get('id')} is gone"
        elif name in ("order", "checkout"):
            order = orders.get(int(body.get("id", -1)))
            if order is None:
                missing = f"order {body.get('id')} is gone"
            elif round(float(body.get("totalAmount", 0)) * 100) != int(order["total_cents"]):
                missing = f"order {body.get('id')} has another total ({order['total_cents']} cents)"
        elif name == "pay":
            payment = payments.get(int(body.get("id", -1)))
            if payment is None:
                missing = f"payment {body.get('id')} is gone"
            elif body.get("status") == "succeeded" and payment["status"] not in ("succeeded", "refunded"):
                missing = f"payment {body.get('id')} answered succeeded, now {payment['status']}"
        elif name in ("shipped", "delivered", "cancel", "cancelled"):  # "cancelled": the admin's
            target = "cancelled" if name == "cancel" else name
            order = orders.get(int(op["args"]["orderId"]))
            if order is None or order["status"] not in LATER_STATUSES[target]:
                missing = f"order {op['args']['orderId']} is {order and order['status']}, not {target}"
        elif name == "refund":
            payment = payments.get(int(op["args"]["paymentId"]))
            if payment is None or payment["status"] != "refunded":
                missing = f"payment {op['args']['paymentId']} is {payment and payment['status']}, not refunded"
        elif name == "restock" and int(op["args"]["productId"]) not in stock:
            missing = f"stock of product {op['args']['productId']} is gone"
        elif name == "cart_add" and op["result"].get("lineQuantity", op["args"]["quantity"]) < op["args"]["quantity"]:
            # The answer is the cart after the add, read in its transaction: it holds the units.
            missing = (f"the answered cart holds {op['result']['lineQuantity']} of product "
                       f"{op['args']['productId']}, {op['args']['quantity']} were added")
        if missing:
            problems.append({"op": op["index"], "name": name, "process": op["process"], "args": op["args"],
                             "answer": op["result"], "problem": missing})
    return verdict(problems + _cart_lines_below_their_adds(history, snapshot))


def _cart_lines_below_their_adds(history: list[Completion], snapshot: Snapshot) -> list[dict[str, Any]]:
    """Units a cart lost that no paid order bought. Only a paid order takes units out of a cart
    in this workload, by what it bought, and never below zero; so a line holds at least the
    units its adds answered ok put in, less every unit of that product the shopper's paid orders
    bought (whenever they were paid: taking them all out only lowers the bound). Adds with an
    unknown outcome and retried attempts could only have added more."""
    user_of = _user_of_process(history, snapshot)
    added: dict[tuple[int, int], list[int]] = defaultdict(list)
    for op in history:
        if op["op"] == "cart_add" and op["type"] == "ok" and op["process"] in user_of:
            added[(user_of[op["process"]], int(op["args"]["productId"]))].append(op["index"])
    quantity_of = {op["index"]: int(op["args"]["quantity"]) for op in history if op["op"] == "cart_add"}
    bought: dict[tuple[int, int], int] = defaultdict(int)
    paid_orders: dict[tuple[int, int], list[int]] = defaultdict(list)
    for event in outbox_events(snapshot):
        if event["service"] == "order" and event["eventType"] == order_events.ORDER_PAID:
            for item in event["data"]["items"]:
                line = (int(event["data"]["userId"]), int(item["productId"]))
                bought[line] += int(item["quantity"])
                paid_orders[line].append(int(event["data"]["id"]))
    carts = {int(c["id"]): int(c["user_id"]) for c in _rows(snapshot, "cart", "carts")}
    held: dict[tuple[int, int], int] = defaultdict(int)
    for item in _rows(snapshot, "cart", "cart_items"):
        if int(item["cart_id"]) in carts:
            held[(carts[int(item["cart_id"])], int(item["product_id"]))] += int(item["quantity"])
    problems = []
    for line, adds in sorted(added.items()):
        least = sum(quantity_of[i] for i in adds) - bought[line]
        if line[0] in carts.values() and held[line] < least:
            problems.append({"cart line": {"user": line[0], "product": line[1]}, "holds": held[line],
                             "atLeast": least, "adds": adds, "paidOrders": sorted(set(paid_orders[line])),
                             "problem": "the cart lost units that no paid order bought"})
    return problems


# -- 4. projections converge -----------------------------------------------------------------
def outbox_events(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every event a service committed (its outbox rows stay after they are sent)."""
    events = []
    for service, tables in snapshot.items():
        if not isinstance(tables, dict):
            continue
        for row in sorted(tables.get("outbox", []), key=lambda r: int(r["id"])):  # commit order per key
            envelope = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
            events.append({"service": service, "eventId": envelope["eventId"], "eventType": envelope["eventType"],
                           "data": envelope.get("data")})
    return events


def check_projections(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    problems: list[Any] = []
    for service, tables in snapshot.items():
        if isinstance(tables, dict):
            problems += [{"problem": "event parked as a dead letter", "service": service, "event": d["event_id"],
                          "eventType": d["event_type"], "error": str(d["error"])[:200]}
                         for d in tables.get("dead_letters", [])]
    users = {int(u["id"]): u for u in _rows(snapshot, "user", "users")}
    for service, table in (("cart", "cart_users"), ("order", "users"), ("notification", "users")):
        projected = {int(u["id"]): u for u in _rows(snapshot, service, table)}
        for uid, user in users.items():
            mine = projected.get(uid)
            if mine is None or mine["email"] != user["email"]:
                problems.append({"projection": f"{service}.{table}", "user": uid, "source": user["email"],
                                 "projected": mine and mine["email"]})
    carts = {int(c["user_id"]) for c in _rows(snapshot, "cart", "carts")}
    problems += [{"projection": "cart.carts", "user": uid, "problem": "no cart"}
                 for uid in users if uid not in carts]
    stock = {int(s["product_id"]): s for s in _rows(snapshot, "inventory", "stock")}
    index = {int(s["product_id"]): s for s in _rows(snapshot, "search", "search_products")}
    for product in _rows(snapshot, "product", "products"):
        pid = int(product["id"])
        level = stock.get(pid)
        if product["deleted_at"] is not None:
            continue
        if level is None:
            problems.append({"projection": "inventory.stock", "product": pid, "problem": "no stock row"})
            continue
        if int(product["stock_quantity"]) != int(level["total_quantity"]):
            problems.append({"projection": "product.stockQuantity", "product": pid,
                             "source": level["total_quantity"], "projected": product["stock_quantity"]})
        entry = index.get(pid)
        available = int(level["total_quantity"]) - int(level["reserved_quantity"])
        if entry is None:
            problems.append({"projection": "search", "product": pid, "problem": "not indexed"})
        elif (entry["name"], int(entry["price_cents"]), int(entry["available_quantity"])) != (
                product["name"], int(product["price_cents"]), available):
            problems.append({"projection": "search", "product": pid,
                             "source": [product["name"], product["price_cents"], available],
                             "projected": [entry["name"], entry["price_cents"], entry["available_quantity"]]})
    guards = {int(g["order_id"]): g for g in _rows(snapshot, "payment", "order_guards")}
    for order in _rows(snapshot, "order", "orders"):
        if order["status"] == "cancelled":
            guard = guards.get(int(order["id"]))
            if guard is None or guard["cancelled_at"] is None:
                problems.append({"projection": "payment.order_guards", "order": order["id"],
                                 "problem": "cancellation not seen by payment"})
    channels = snapshot.get("notification_channels", ("email", "sms", "push"))
    audited = {a["event_id"] for a in _rows(snapshot, "audit", "audit_logs")}
    notified = {(n["source_event_id"], n["channel"]) for n in _rows(snapshot, "notification", "notifications")}
    for event in outbox_events(snapshot):
        if event["eventId"] not in audited:
            problems.append({"projection": "audit", "event": event["eventId"], "eventType": event["eventType"],
                             "producer": event["service"], "problem": "no audit record"})
        if event["eventType"] in NOTIFIED_EVENTS:
            for channel in channels_for(event["eventType"], tuple(channels)):
                if (event["eventId"], channel) not in notified:
                    problems.append({"projection": "notification", "event": event["eventId"],
                                     "eventType": event["eventType"], "channel": channel,
                                     "problem": "no notification"})
                    break
    problems += carts_holding_bought_units(history, snapshot)
    misaddressed = _misaddressed_notifications(snapshot, tuple(channels))
    if misaddressed:  # wrong, not late: invalid whether or not the system had healed
        return verdict(misaddressed + problems)
    healed = snapshot.get("healed", True)
    return verdict(problems, unknown_reason=None if healed else "the system had not healed when read")


def carts_holding_bought_units(history: list[Completion], snapshot: Snapshot) -> list[dict[str, Any]]:
    """Cart lines above what their shopper can have left: items bought in a paid order leave
    the cart. Replaying each shopper's ops in order gives an upper bound per line: an add
    answered ok counts where it was made, and a paid order's units come out at its first `pay`
    (never later than the cart applies ORDER_PAID; taking out early only raises the bound). An
    add whose outcome is unknown, and the extra attempts of a retried add, may have landed any
    time later, so they count at the end and are never taken out."""
    bought = {int(e["data"]["id"]): e["data"]["items"] for e in outbox_events(snapshot)
              if e["service"] == "order" and e["eventType"] == order_events.ORDER_PAID}
    user_of = _user_of_process(history, snapshot)
    bound: dict[tuple[int, int], int] = defaultdict(int)
    late: dict[tuple[int, int], int] = defaultdict(int)
    taken_out: set[int] = set()
    for op in sorted(history, key=lambda o: o["index"]):
        uid = user_of.get(op["process"])
        if uid is None:
            continue
        if op["op"] == "cart_add" and op["type"] in ("ok", "info"):
            line, quantity = (uid, int(op["args"]["productId"])), int(op["args"]["quantity"])
            attempts = int(op["result"].get("attempts", 1))
            if op["type"] == "ok":
                bound[line] += quantity
                late[line] += quantity * (attempts - 1)
            else:
                late[line] += quantity * attempts
        elif op["op"] == "pay" and int(op["args"]["orderId"]) in bought:
            order_id = int(op["args"]["orderId"])
            if order_id not in taken_out:
                taken_out.add(order_id)
                for item in bought[order_id]:
                    line = (uid, int(item["productId"]))
                    bound[line] = max(0, bound[line] - int(item["quantity"]))
    cart_of = {int(c["id"]): int(c["user_id"]) for c in _rows(snapshot, "cart", "carts")}
    shoppers = set(user_of.values())
    problems = []
    for item in _rows(snapshot, "cart", "cart_items"):
        line = (cart_of.get(int(item["cart_id"])), int(item["product_id"]))
        most = bound[line] + late[line]
        if line[0] in shoppers and int(item["quantity"]) > most:
            problems.append({"projection": "cart.cart_items", "user": line[0], "product": line[1],
                             "quantity": int(item["quantity"]), "atMost": most,
                             "problem": "the cart holds units a paid order bought",
                             "paidOrders": sorted(o for o in taken_out if any(
                                 int(i["productId"]) == line[1] for i in bought[o]))})
    return problems


def _misaddressed_notifications(snapshot: Snapshot, channels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Notifications that are not what their source event asks for: each goes to the user the
    event is about (data.userId; a USER_* event is about data.id), has the event's type, and
    uses a channel that event type goes by."""
    events = {e["eventId"]: e for e in outbox_events(snapshot)}
    problems = []
    for note in _rows(snapshot, "notification", "notifications"):
        event = events.get(note["source_event_id"])
        if event is None:
            continue  # an effect of an uncommitted event: exactly-once names it
        kind, data = event["eventType"], event["data"] if isinstance(event["data"], dict) else {}
        about = data.get("id") if kind.startswith("USER_") else data.get("userId")
        wrong = None
        if about is not None and int(note["user_id"]) != int(about):
            wrong = f"sent to user {note['user_id']}, the event is about user {about}"
        elif note["type"] != kind:
            wrong = f"of type {note['type']}"
        elif note["channel"] not in channels_for(kind, list(channels)):
            wrong = f"on channel {note['channel']}, which {kind} does not go by"
        if wrong:
            problems.append({"projection": "notification", "notification": note["id"], "event": event["eventId"],
                             "eventType": kind, "problem": f"a notification of {kind} {wrong}"})
    return problems


# -- 5. exactly once ---------------------------------------------------------------------------
def check_exactly_once(history: list[Completion], snapshot: Snapshot) -> dict[str, Any]:
    problems = []
    notes = Counter((n["source_event_id"], n["channel"]) for n in _rows(snapshot, "notification", "notifications"))
    for (event_id, channel), n in sorted(notes.items()):
        if n > 1:
            ids = [r["id"] for r in _rows(snapshot, "notification", "notifications")
                   if (r["source_event_id"], r["channel"]) == (event_id, channel)]
            problems.append({"duplicate": "notification", "event": event_id, "channel": channel, "count": n,
                             "notifications": ids})
    # Only committed events may have effects: an event applied anywhere (an inbox claim) must be
    # in its producer's outbox. HTTP activity is published directly, outside any outbox.
    committed = {e["eventId"] for e in outbox_events(snapshot)}
    http_activity = {a["event_id"] for a in _rows(snapshot, "audit", "audit_logs")
                     if a["event_type"] == HTTP_ACTIVITY}
    for service, tables in sorted((k, v) for k, v in snapshot.items() if isinstance(v, dict)):
        for row in tables.get("inbox", []):
            if row["event_id"] not in committed and row["event_id"] not in http_activity:
                problems.append({"applied but never committed": row["event_id"], "consumer": row["consumer"],
                                 "service": service})
    problems += _orders_beyond_requests(history, snapshot)
    audits = Counter(a["event_id"] for a in _rows(snapshot, "audit", "audit_logs"))
    for event_id, n in sorted(audits.items()):
        if n > 1:
            ids = [r["id"] for r in _rows(snapshot, "audit", "audit_logs") if r["event_id"] == event_id]
            problems.append({"duplicate": "audit", "event": event_id, "count": n, "records": ids})
    if problems:
        return verdict(problems)
    healed = snapshot.get("healed", True)
    return verdict(_not_applied(snapshot), unknown_reason=None if healed else "the system had not healed when read")


def _orders_beyond_requests(history: list[Completion], snapshot: Snapshot) -> list[dict[str, Any]]:
    """One order request places at most one order, however often it is retried (its
    Idempotency-Key). A request answered 2xx placed the order it named, one refused placed
    none, so a shopper's orders that no answer named are at most their requests whose outcome
    is unknown."""
    user_of = _user_of_process(history, snapshot)
    named: set[int] = set()
    unknown: dict[int, list[int]] = defaultdict(list)
    for op in history:
        if op["op"] not in ("order", "checkout") or op["process"] not in user_of:
            continue
        body = op["result"]["body"]
        if op["type"] == "ok" and isinstance(body, dict) and "id" in body:
            named.add(int(body["id"]))
        elif op["type"] == "info":
            unknown[user_of[op["process"]]].append(op["index"])
    unnamed: dict[int, list[int]] = defaultdict(list)
    for order in _rows(snapshot, "order", "orders"):
        if order["status"] not in ("reserving", "failed") and int(order["id"]) not in named:
            unnamed[int(order["user_id"])].append(int(order["id"]))
    return [{"duplicate": "order", "user": uid, "orders": sorted(ids), "unknownRequests": unknown[uid],
             "problem": "more orders than requests placed them: a retried request placed another"}
            for uid, ids in sorted(unnamed.items()) if uid in user_of.values() and len(ids) > len(unknown[uid])]


@cache
def consumer_groups() -> dict[str, tuple[str, ...]]:
    """Event type -> the services whose consumer group applies it (their logic has a handler)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in implemented_services():
        logic = load_spec(name).logic
        for event_name in sorted(logic.handled_event_types()) if logic else ():
            groups[event_name].append(name)
    return {event_name: tuple(names) for event_name, names in groups.items()}


def _not_applied(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Committed events some subscribed consumer group has no inbox record of.

    Every group applies every committed event of the types it handles exactly once, and records
    it in its inbox in the transaction of the effects (docs/reliability.md): an event without
    that record was lost, or applied outside the inbox, where nothing stops a redelivery from
    applying it again. Only groups whose service was read are judged.
    """
    read = {service for service, tables in snapshot.items() if isinstance(tables, dict) and "inbox" in tables}
    applied = {(row["consumer"], row["event_id"]) for service in read for row in snapshot[service]["inbox"]}
    problems = []
    for event in outbox_events(snapshot):
        groups = [g for g in consumer_groups().get(event["eventType"], ()) if g in read]
        missing = [g for g in groups if (g, event["eventId"]) not in applied]
        if missing:
            problems.append({"not applied": event["eventId"], "eventType": event["eventType"],
                             "producer": event["service"], "consumers": missing,
                             "problem": "a committed event without the inbox record of every group that consumes it"})
    return problems


CHECKERS: dict[str, Checker] = {
    "stock": check_stock,
    "payments": check_payments,
    "lifecycle": check_lifecycle,
    "acknowledged-writes": check_acknowledged,
    "projections": check_projections,
    "exactly-once": check_exactly_once,
}


def run_checkers(history: list[Completion], snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    results = {}
    for name, checker in CHECKERS.items():
        try:
            results[name] = checker(history, snapshot)
        except Exception as exc:  # a checker bug must not pass as valid
            results[name] = {"valid": "unknown", "counterexample": {"checker error": repr(exc)}, "problems": 0}
    return results


def overall(results: dict[str, dict[str, Any]]) -> bool | str:
    values = [r["valid"] for r in results.values()]
    if False in values:
        return False
    return "unknown" if "unknown" in values else True
