"""Checkers on hand-made histories and snapshots: each can fail, and names the ids."""

from __future__ import annotations

from microcommerce.chaos.checkers import (
    carts_holding_bought_units,
    check_acknowledged,
    check_exactly_once,
    check_lifecycle,
    check_payments,
    check_projections,
    check_stock,
    overall,
)


def _ok(index: int, op: str, body: dict, **args: object) -> dict:
    return {"index": index, "type": "ok", "process": "shopper-0", "op": op, "args": {"path": "/", **args},
            "result": {"status": 201, "body": body}, "t": float(index)}


def test_an_acknowledged_order_that_is_gone_is_named() -> None:
    history = [_ok(1, "order", {"id": 7, "totalAmount": 5.0}), _ok(2, "order", {"id": 8, "totalAmount": 5.0})]
    snapshot = {"order": {"orders": [{"id": 7, "user_id": 1, "status": "pending", "total_cents": 500}]}}
    verdict = check_acknowledged(history, snapshot)
    assert verdict["valid"] is False
    assert verdict["counterexample"]["op"] == 2 and "order 8" in verdict["counterexample"]["problem"]


def test_a_projection_behind_its_source_is_named_unless_the_system_had_not_healed() -> None:
    snapshot = {"user": {"users": [{"id": 3, "email": "a@b.c", "role": "user"}]},
                "cart": {"cart_users": [], "carts": [{"id": 1, "user_id": 3}]},
                "order": {"users": [{"id": 3, "email": "a@b.c"}], "orders": []},
                "notification": {"users": [{"id": 3, "email": "a@b.c"}]}}
    verdict = check_projections([], snapshot)
    assert verdict["valid"] is False and verdict["counterexample"]["user"] == 3
    assert check_projections([], {**snapshot, "healed": False})["valid"] == "unknown"
    assert overall({"a": {"valid": True}, "b": {"valid": "unknown"}}) == "unknown"


def _payment(pid: int, status: str, charge: str, key: str) -> dict:
    return {"id": pid, "order_id": 5, "provider": "stripe", "status": status, "amount_cents": 800,
            "provider_payment_id": charge, "idempotency_key": key}


def _charge(charge: str, key: str, succeeded: bool = True) -> dict:
    return {"provider": "stripe", "idempotencyKey": key, "chargeId": charge, "amountCents": 800, "currency": "USD",
            "succeeded": succeeded, "failureReason": None if succeeded else "card_declined", "createdAt": "t"}


def test_an_order_captured_twice_is_named_even_if_the_second_charge_was_refunded() -> None:
    order = {"id": 5, "user_id": 1, "status": "paid", "total_cents": 800}
    snapshot = {"order": {"orders": [order]},
                "payment": {"payments": [_payment(1, "succeeded", "ch_a", "pay_a"),
                                         _payment(2, "refunded", "ch_b", "pay_b")]},
                "provider": {"charges": [_charge("ch_a", "pay_a"), _charge("ch_b", "pay_b")],
                             "refunds": [{"provider": "stripe", "idempotencyKey": "refund_pay_b", "refundId": "re_b",
                                          "chargeId": "ch_b", "amountCents": 800, "createdAt": "t"}]}}
    verdict = check_payments([], snapshot)
    assert verdict["valid"] is False
    assert verdict["counterexample"]["order"] == 5 and verdict["counterexample"]["charges"] == ["ch_a", "ch_b"]
    assert [p["id"] for p in verdict["counterexample"]["payments"]] == [1, 2]


def test_a_declined_charge_retried_with_another_card_is_one_capture() -> None:
    order = {"id": 5, "user_id": 1, "status": "paid", "total_cents": 800}
    snapshot = {"order": {"orders": [order]},
                "payment": {"payments": [_payment(1, "failed", "ch_a", "pay_a"),
                                         _payment(2, "succeeded", "ch_b", "pay_b")]},
                "provider": {"charges": [_charge("ch_a", "pay_a", succeeded=False), _charge("ch_b", "pay_b")],
                             "refunds": []}}
    assert check_payments([], snapshot)["valid"] is True


def _outbox_row(event_id: str, event_type: str, data: dict | None = None, row_id: int = 1) -> dict:
    return {"id": row_id, "payload": {"eventId": event_id, "eventType": event_type, "data": data or {}}}


def test_a_committed_event_a_consumer_group_never_recorded_is_named() -> None:
    # ORDER_PAID is consumed by cart, inventory, notification and audit; payment does not handle it.
    snapshot = {"order": {"outbox": [_outbox_row("e1", "ORDER_PAID")], "inbox": []},
                "cart": {"inbox": [{"consumer": "cart", "event_id": "e1"}]},
                "inventory": {"inbox": []},
                "payment": {"inbox": []}}
    verdict = check_exactly_once([], snapshot)
    assert verdict["valid"] is False
    assert verdict["counterexample"]["not applied"] == "e1" and verdict["counterexample"]["consumers"] == ["inventory"]
    snapshot["inventory"]["inbox"].append({"consumer": "inventory", "event_id": "e1"})
    assert check_exactly_once([], snapshot)["valid"] is True
    snapshot["inventory"]["inbox"].clear()
    assert check_exactly_once([], {**snapshot, "healed": False})["valid"] == "unknown"


def _order_events(*changes: tuple[str, str, str]) -> list[dict]:
    """(event type, previous status, status) for order 9, in commit order."""
    return [_outbox_row(f"o{n}", kind, {"id": 9, "previousStatus": before, "status": after, "totalAmount": 12.0},
                        row_id=n) for n, (kind, before, after) in enumerate(changes, start=1)]


def _order_snapshot(status: str, events: list[dict], lines: list[tuple[int, int, int]] = ((2, 600, 1200),)) -> dict:
    items = [{"order_id": 9, "product_id": n, "quantity": q, "unit_price_cents": unit, "line_total_cents": total}
             for n, (q, unit, total) in enumerate(lines)]
    return {"order": {"orders": [{"id": 9, "user_id": 1, "status": status, "total_cents": 1200}],
                      "order_items": items, "outbox": events}}


def test_an_order_whose_events_follow_the_status_machine_is_valid() -> None:
    events = _order_events(("ORDER_CREATED", "", "pending"), ("ORDER_PAID", "pending", "paid"),
                           ("ORDER_SHIPPED", "paid", "shipped"), ("ORDER_REFUNDED", "shipped", "refunded"))
    assert check_lifecycle([], _order_snapshot("refunded", events))["valid"] is True
    assert check_lifecycle([], _order_snapshot("failed", []))["valid"] is True  # internal, never announced


def test_an_illegal_skipped_or_unannounced_change_is_named() -> None:
    shipped_unpaid = _order_events(("ORDER_CREATED", "", "pending"), ("ORDER_SHIPPED", "pending", "shipped"))
    verdict = check_lifecycle([], _order_snapshot("shipped", shipped_unpaid))
    assert verdict["valid"] is False and "pending -> shipped" in verdict["counterexample"]["problem"]
    assert verdict["counterexample"]["events"] == ["o1", "o2"]
    lost_paid = _order_events(("ORDER_CREATED", "", "pending"), ("ORDER_SHIPPED", "paid", "shipped"))
    assert "the order was pending" in check_lifecycle([], _order_snapshot("shipped", lost_paid))["counterexample"]["problem"]
    silent = _order_events(("ORDER_CREATED", "", "pending"))
    assert "stored paid" in check_lifecycle([], _order_snapshot("paid", silent))["counterexample"]["problem"]


def test_a_total_that_is_not_the_sum_of_its_lines_is_named() -> None:
    created = _order_events(("ORDER_CREATED", "", "pending"))
    verdict = check_lifecycle([], _order_snapshot("pending", created, lines=[(2, 600, 600)]))
    assert verdict["valid"] is False and verdict["counterexample"]["line"]["quantity"] == 2
    verdict = check_lifecycle([], _order_snapshot("pending", created, lines=[(1, 600, 600), (1, 500, 500)]))
    assert "lines sum to 1100" in verdict["counterexample"]["problem"]


def test_an_acknowledged_owner_cancel_of_a_paid_order_is_named() -> None:
    events = _order_events(("ORDER_CREATED", "", "pending"), ("ORDER_PAID", "pending", "paid"),
                           ("ORDER_CANCELLED", "paid", "cancelled"))
    snapshot = _order_snapshot("cancelled", events)
    assert check_lifecycle([], snapshot)["valid"] is True  # an admin may cancel a paid order
    verdict = check_lifecycle([_ok(4, "cancel", {}, orderId=9)], snapshot)
    assert verdict["valid"] is False and verdict["counterexample"]["op"] == 4


def _stock_event(n: int, kind: str, total: int, reserved: int, sold: int, quantity: int) -> dict:
    data = {"productId": 3, "totalQuantity": total, "reservedQuantity": reserved, "availableQuantity": total - reserved,
            "soldQuantity": sold, "quantity": quantity, "version": n}
    return _outbox_row(f"s{n}", kind, data, row_id=n)


def _stock_snapshot(total: int, sold: int, version: int) -> dict:
    """Product 3: 4 units put in, 2 reserved by order 9, then sold when it shipped."""
    events = [_stock_event(1, "STOCK_UPDATED", 4, 0, 0, 4), _stock_event(2, "STOCK_RESERVED", 4, 2, 0, 2),
              _stock_event(3, "STOCK_CONFIRMED", 2, 0, 2, 2)]
    return {"inventory": {"stock": [{"product_id": 3, "total_quantity": total, "reserved_quantity": 0,
                                     "sold_quantity": sold, "version": version}],
                          "reservations": [{"id": 1, "order_id": 9, "product_id": 3, "quantity": 2,
                                            "status": "confirmed"}],
                          "outbox": events}}


def test_stock_sold_but_still_on_hand_or_changed_unannounced_is_named() -> None:
    assert check_stock([], _stock_snapshot(total=2, sold=2, version=3))["valid"] is True
    kept_on_hand = check_stock([], _stock_snapshot(total=4, sold=2, version=3))
    assert kept_on_hand["valid"] is False and kept_on_hand["counterexample"]["product"] == 3
    assert "on hand + sold is 6 but 4 units" in kept_on_hand["counterexample"]["problem"]
    unannounced = check_stock([], _stock_snapshot(total=2, sold=2, version=4))["counterexample"]
    assert unannounced["event"] == "s3" and unannounced["row"]["version"] == 4


def test_a_unit_price_the_product_never_had_is_named() -> None:
    snapshot = _order_snapshot("pending", _order_events(("ORDER_CREATED", "", "pending")))  # 2 x 600 of product 0
    snapshot["product"] = {"products": [{"id": 0, "price_cents": 500}],
                           "outbox": [_outbox_row("p1", "PRODUCT_CREATED", {"id": 0, "price": 6.0})]}
    assert check_lifecycle([], snapshot)["valid"] is True  # 6.00 then, 5.00 now
    snapshot["product"]["outbox"].clear()
    verdict = check_lifecycle([], snapshot)
    assert verdict["valid"] is False and verdict["counterexample"]["order"] == 9
    assert verdict["counterexample"]["line"]["unit_price_cents"] == 600 and verdict["counterexample"]["prices"] == [500]


def test_a_notification_to_another_user_or_channel_than_its_event_asks_is_named() -> None:
    def snapshot(user_id: int, channel: str = "email") -> dict:
        note = {"id": 70, "user_id": user_id, "channel": channel, "type": "PAYMENT_SUCCEEDED", "source_event_id": "e1"}
        return {"payment": {"outbox": [_outbox_row("e1", "PAYMENT_SUCCEEDED", {"id": 40, "userId": 3})]},
                "audit": {"audit_logs": [{"id": 1, "event_id": "e1", "event_type": "PAYMENT_SUCCEEDED"}]},
                "notification": {"notifications": [note]}, "notification_channels": ["email"]}

    assert check_projections([], snapshot(user_id=3))["valid"] is True
    verdict = check_projections([], {**snapshot(user_id=40), "healed": False})  # wrong, not late
    assert verdict["valid"] is False
    assert verdict["counterexample"]["notification"] == 70 and verdict["counterexample"]["event"] == "e1"
    assert "sent to user 40, the event is about user 3" in verdict["counterexample"]["problem"]
    assert "channel sms" in check_projections([], snapshot(user_id=3, channel="sms"))["counterexample"]["problem"]


def test_an_acknowledged_cart_add_answering_fewer_units_than_asked_is_named() -> None:
    def add(index: int, answered: int) -> dict:
        op = _ok(index, "cart_add", {"userId": 3, "totalQuantity": answered}, productId=5, quantity=2)
        op["result"]["lineQuantity"] = answered
        return op

    snapshot = {"cart": {"carts": [{"id": 1, "user_id": 3}],
                         "cart_items": [{"cart_id": 1, "product_id": 5, "quantity": 3}]}}
    assert check_acknowledged([add(1, 2), add(2, 3)], snapshot)["valid"] is True
    verdict = check_acknowledged([add(1, 2), add(2, 1)], snapshot)
    assert verdict["valid"] is False and verdict["counterexample"]["op"] == 2
    assert "holds 1 of product 5, 2 were added" in verdict["counterexample"]["problem"]


def _shop_op(index: int, kind: str, op: str, **args: object) -> dict:
    result = {"status": 201, "body": {"id": 3} if op == "signup" else {}}
    if kind == "info":
        result = {"status": None, "body": "TimeoutError", "attempts": 4}
    return {"index": index, "type": kind, "process": "shopper-0", "op": op, "args": args, "result": result,
            "t": float(index)}


def _cart_snapshot(quantity: int) -> dict:
    paid = _outbox_row("p1", "ORDER_PAID", {"id": 9, "userId": 3, "items": [{"productId": 5, "quantity": 2}]})
    user = {"id": 3, "email": "a@b.c"}
    return {"user": {"users": [user]}, "notification": {"users": [user]},
            "cart": {"cart_users": [user], "carts": [{"id": 1, "user_id": 3}],
                     "cart_items": [{"cart_id": 1, "product_id": 5, "quantity": quantity}]},
            "order": {"users": [user], "outbox": [paid]}}


def test_a_cart_still_holding_what_a_paid_order_bought_is_named() -> None:
    history = [_shop_op(0, "ok", "signup"), _shop_op(1, "ok", "cart_add", productId=5, quantity=2),
               _shop_op(2, "ok", "pay", orderId=9), _shop_op(3, "ok", "cart_add", productId=5, quantity=1)]
    assert carts_holding_bought_units(history, _cart_snapshot(1)) == []  # the later add stays
    [problem] = carts_holding_bought_units(history, _cart_snapshot(3))
    assert problem["atMost"] == 1 and problem["paidOrders"] == [9] and problem["user"] == 3
    # An add whose answer was lost may land after the order was paid: its units count at the end.
    unsure = [*history[:3], _shop_op(3, "info", "cart_add", productId=5, quantity=1)]
    assert carts_holding_bought_units(unsure, _cart_snapshot(4)) == []  # 4 attempts of 1 unit
    assert len(carts_holding_bought_units(unsure, _cart_snapshot(5))) == 1
    # The projections checker reports it, besides the audit record and notifications this snapshot lacks.
    assert check_projections(history, _cart_snapshot(3))["problems"] == \
        check_projections(history, _cart_snapshot(1))["problems"] + 1


def test_a_cart_that_lost_units_no_paid_order_bought_is_named() -> None:
    history = [_shop_op(0, "ok", "signup"), _shop_op(1, "ok", "cart_add", productId=5, quantity=2),
               _shop_op(2, "ok", "cart_add", productId=5, quantity=3)]
    assert check_acknowledged(history, _cart_snapshot(3))["valid"] is True  # 5 added, order 9 bought 2
    verdict = check_acknowledged(history, _cart_snapshot(2))
    assert verdict["valid"] is False
    example = verdict["counterexample"]
    assert example["cart line"] == {"user": 3, "product": 5} and example["holds"] == 2
    assert example["atLeast"] == 3 and example["adds"] == [1, 2] and example["paidOrders"] == [9]
    # An add whose outcome is unknown may not have landed: it raises no floor.
    unsure = [*history[:2], _shop_op(2, "info", "cart_add", productId=5, quantity=3)]
    assert check_acknowledged(unsure, _cart_snapshot(0))["valid"] is True
