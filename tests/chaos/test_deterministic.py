"""The chaos harness on the deterministic runner: the same seed gives byte-identical outputs,
another seed another trace; the checkers hold on the real code; a planted bug is caught and its
seed replays to the same counterexample; a replay stops at the first divergence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from microcommerce.chaos.faults import FAMILIES
from microcommerce.chaos.runner import RunConfig, RunResult, write_outputs
from microcommerce.chaos.simulation import Divergence, simulate
from microcommerce.contracts.inventory import STOCK_RELEASED
from microcommerce.services.inventory import domain as inventory_domain
from microcommerce.services.inventory import store as inventory_store
from microcommerce.services.inventory.actor import InventoryActor
from microcommerce.services.order import domain as order_domain

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("history.jsonl", "faults.jsonl", "trace.jsonl", "results.json")


def config(seed: int, families: tuple[str, ...] = FAMILIES, **extra) -> RunConfig:
    return RunConfig(seed=seed, duration=extra.pop("duration", 40.0), shoppers=extra.pop("shoppers", 6),
                     families=families, deterministic=True, think_s=extra.pop("think_s", 1.0), **extra)


def run_into(cfg: RunConfig, out: Path, **kwargs) -> RunResult:
    result = simulate(cfg, progress=None, **kwargs)
    write_outputs(result, out)
    return result


@pytest.mark.parametrize("seed", [1, 2])
def test_the_same_seed_twice_gives_byte_identical_outputs_with_every_fault_on(seed: int, tmp_path: Path) -> None:
    first = run_into(config(seed), tmp_path / "first")
    run_into(config(seed), tmp_path / "second")
    for name in OUTPUTS:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    assert first.valid is True, first.checkers
    assert sum(first.faults.values()) > 50 and len(first.faults) >= 8  # the faults really happened
    assert first.ops["ok"] > 50 and first.healed
    trace = (tmp_path / "first" / "trace.jsonl").read_text().splitlines()
    assert {'"kind":"deliver"', '"kind":"timer"', '"kind":"fault"'} <= {
        part for line in trace for part in line.split(",") if part.startswith('"kind"')}


def test_watching_the_progress_changes_nothing_in_the_run(tmp_path: Path) -> None:
    lines: list[str] = []
    run_into(config(6, duration=30.0), tmp_path / "quiet")
    result = simulate(config(6, duration=30.0), progress=lines.append)
    write_outputs(result, tmp_path / "watched")
    assert sum(line.startswith("[sim ") for line in lines) >= 3  # a line per 10 simulated seconds
    for name in OUTPUTS:
        assert (tmp_path / "quiet" / name).read_bytes() == (tmp_path / "watched" / name).read_bytes(), name


def test_another_seed_gives_another_trace(tmp_path: Path) -> None:
    run_into(config(3, duration=15.0), tmp_path / "a")
    run_into(config(4, duration=15.0), tmp_path / "b")
    assert (tmp_path / "a" / "trace.jsonl").read_bytes() != (tmp_path / "b" / "trace.jsonl").read_bytes()


def test_each_fault_family_alone_is_valid_on_the_real_code() -> None:
    for n, family in enumerate(FAMILIES):
        result = simulate(config(20 + n, (family,), duration=12.0, think_s=0.5), progress=None)
        assert result.valid is True, (family, result.checkers)
        assert result.faults.get(family, 0) > 0, (family, result.faults)


def test_a_planted_bug_is_caught_and_its_seed_replays_to_the_same_counterexample(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async def take_without_condition(tx, product_id: int, quantity: int) -> bool:  # noqa: ANN001
        await tx.execute("UPDATE stock SET reserved_quantity = reserved_quantity + ?, version = version + 1 "
                         "WHERE product_id = ?", quantity, product_id)
        return True

    monkeypatch.setattr(inventory_store, "take_available", take_without_condition)
    cfg = config(12, (), duration=15.0, think_s=0.3)
    first = run_into(cfg, tmp_path / "bug")
    stock = first.checkers["stock"]
    assert first.valid is False and stock["valid"] is False, first.checkers
    assert stock["counterexample"]["ledger"]["available"] < 0
    trace = (tmp_path / "bug" / "trace.jsonl").read_text().splitlines()
    replayed = simulate(cfg, progress=None, expected_trace=trace)  # raises at a divergence
    assert replayed.checkers["stock"]["counterexample"] == stock["counterexample"]


def test_a_payment_racing_its_reservation_lapse_leaves_no_paid_order_without_stock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression of a bug this runner found (docs/chaos.md, "Bugs the harness found"): an order
    paid after inventory's sweep took its units back, before ORDER_PAID pinned them, stayed paid
    with no stock. The lapse now cancels (and so refunds) it. Seed 25 shows it with this workload
    (a change to the workload moves races between seeds: then pick another that shows it)."""
    cfg = config(25, duration=120.0, shoppers=8, think_s=0.03)
    fixed = simulate(cfg, progress=None)
    assert fixed.valid is True, fixed.checkers
    monkeypatch.setattr(order_domain, "LAPSE_CANCELS", (order_domain.PENDING,))  # the code before the fix
    broken = simulate(cfg, progress=None)
    assert broken.checkers["stock"]["valid"] is False, broken.checkers
    assert broken.checkers["stock"]["counterexample"]["problem"] == "paid without its stock held"
    assert broken.checkers["stock"]["counterexample"]["reservations"] == ["expired"]


def test_an_expiry_that_keeps_the_units_reserved_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep marks a lapsed reservation expired but never gives its units back. Only shoppers
    who pause (the default think time) leave orders unpaid long enough for reservations to lapse."""
    async def release_keeping_expired_units(self: InventoryActor, tx, row: dict, reason: str):  # noqa: ANN001, ANN202
        reservation = inventory_store.to_reservation(row)
        to_status = inventory_domain.status_after_release(reason)
        if reservation.status != inventory_domain.RESERVED or not await inventory_store.move_reservation(
                tx, reservation.id, inventory_domain.RESERVED, to_status,
                only_unheld=to_status == inventory_domain.EXPIRED):
            return reservation, False
        if reason != "expired":  # the bug: the sweep's path skips the give-back
            await inventory_store.give_back(tx, reservation.productId, reservation.quantity)
        await self._announce(tx, STOCK_RELEASED, reservation.productId, orderId=reservation.orderId,
                             reservationId=reservation.id, quantity=reservation.quantity, reason=reason)
        return msgspec.structs.replace(reservation, status=to_status), True

    monkeypatch.setattr(InventoryActor, "_release", release_keeping_expired_units)
    result = simulate(RunConfig(seed=21, duration=120.0, shoppers=8, families=(), deterministic=True),
                      progress=None)
    stock = result.checkers["stock"]
    assert stock["valid"] is False, result.checkers
    assert "but its reserved reservations hold" in stock["counterexample"]["problem"]
    assert "expired" in {r["status"] for r in stock["counterexample"]["reservations"]}


def test_a_replay_stops_at_the_first_step_that_differs(tmp_path: Path) -> None:
    cfg = config(5, duration=10.0)
    run_into(cfg, tmp_path / "run")
    trace = (tmp_path / "run" / "trace.jsonl").read_text().splitlines()
    tampered = [*trace[:299], trace[299].replace('"kind"', '"was":1,"kind"'), *trace[300:]]
    with pytest.raises(Divergence) as raised:
        simulate(cfg, progress=None, expected_trace=tampered)
    assert raised.value.line == 300
    assert raised.value.expected == tampered[299] and raised.value.actual == trace[299]


def chaos_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microcommerce.cli", "chaos", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_the_cli_records_a_deterministic_run_and_replays_it(tmp_path: Path) -> None:
    run = chaos_cli("--deterministic", "--seed", "7", "--duration", "20", "--shoppers", "4", "--faults", "all",
                    "--out", "run", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "on the deterministic runner" in run.stdout and "sim " in run.stdout  # progress in virtual time
    assert "microcommerce chaos --replay run" in run.stdout
    replay = chaos_cli("--replay", "run", "--out", "again", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "matched the recorded run" in replay.stdout
    for name in OUTPUTS:  # another process (PYTHONHASHSEED is pinned by the CLI) agrees too
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name

    trace = tmp_path / "run" / "trace.jsonl"
    lines = trace.read_text().splitlines()
    lines[99] = lines[99].replace('"t":', '"t":1', 1)
    trace.write_text("\n".join(lines) + "\n")
    diverged = chaos_cli("--replay", "run", "--out", "third", cwd=tmp_path)
    assert diverged.returncode == 2
    assert "diverged at trace line 100" in diverged.stderr and "Traceback" not in diverged.stderr


def test_the_cli_refuses_what_the_deterministic_runner_cannot_do(tmp_path: Path) -> None:
    with_db = chaos_cli("--deterministic", "--db", "mysql://root@127.0.0.1/{service}", cwd=tmp_path)
    assert with_db.returncode == 2 and "keeps every database in memory" in with_db.stderr
    missing = chaos_cli("--replay", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and "has no results.json and trace.jsonl" in missing.stderr
    assert "Traceback" not in with_db.stderr + missing.stderr
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "trace.jsonl").write_text("{}\n")
    config = {"seed": 1, "duration": 5, "shoppers": 2, "faults": ["drop"], "swarm": False, "deterministic": True,
              "think": 1.0}
    for broken in ("{not json", json.dumps({"config": {**config, "duration": -5}}),
                   json.dumps({"config": {**config, "faults": ["meteor"]}})):
        (recorded / "results.json").write_text(broken)
        refused = chaos_cli("--replay", "recorded", cwd=tmp_path)
        assert refused.returncode == 2 and "is not the results of a chaos run" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_the_run_does_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    """String hashing (set order) is randomised per process; a run must not lean on it."""
    script = ("import sys, logging; logging.disable(logging.CRITICAL)\n"
              "from pathlib import Path\n"
              "from microcommerce.chaos.faults import FAMILIES\n"
              "from microcommerce.chaos.runner import RunConfig, write_outputs\n"
              "from microcommerce.chaos.simulation import simulate\n"
              "config = RunConfig(seed=9, duration=20, shoppers=4, families=FAMILIES, deterministic=True,"
              " think_s=1.0)\n"
              "write_outputs(simulate(config, progress=None), Path(sys.argv[1]))\n")
    for hash_seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / hash_seed)], capture_output=True,
                              text=True, timeout=300,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": hash_seed})
        assert done.returncode == 0, done.stderr[-2000:]
    for name in OUTPUTS:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
