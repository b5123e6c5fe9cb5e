"""Checkers on hand-made histories and snapshots: each can fail, and names the ids."""

from __future__ import annotations

from microcommerce.chaos.checkers import check_acknowledged, check_projections, overall


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
