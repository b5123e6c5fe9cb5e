"""Mock payment providers: deterministic test modes and durable books, as real providers have.

stripe  `tok_visa`, `tok_mastercard` (the default) succeed; `tok_chargeDeclined` fails with
        "card_declined"; `tok_insufficientFunds` with "insufficient_funds"; any other token
        with "invalid_token". Charge ids look like `ch_<hex>`, refunds like `re_<hex>`.
paymob  `paymob_success` (the default) succeeds; `paymob_declined` fails with "declined"; any
        other token with "invalid_token". Ids look like `pm_<hex>` and `pmr_<hex>`.
both    `tok_visa_slow` / `paymob_success_slow` succeed, but the provider answers only
        SLOW_TOKEN_DELAY_S (or PROVIDER_SLOW_DELAY_MS) after it has booked the charge (a slow
        network, for crash tests and the chaos harness).

Every charge carries the merchant's idempotency key, as Stripe's `Idempotency-Key` header: a
key the provider has seen answers with the booked result and charges nothing again. The books
(`ProviderLedger`) live outside the payment database, in their own SQLite file, because a
provider is another company: what it holds survives whatever happens to our database, which
is what lets the payment service reconcile after a crash. A declined charge is booked too
(real providers record declines) but moves no money.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import ClassVar

import msgspec

from microcommerce import environment
from microcommerce.config import Settings
from microcommerce.contracts.events import utc_now_iso

SLOW_TOKEN_DELAY_S = 3.0  # under the default 4 s request timeout: the charge still answers
LEDGER_FILE = "providers.sqlite"


class ChargeResult(msgspec.Struct, frozen=True, kw_only=True):
    provider_payment_id: str | None  # None: the provider never saw the charge
    succeeded: bool
    failure_reason: str | None = None


class LedgerCharge(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    idempotencyKey: str
    chargeId: str
    amountCents: int
    currency: str
    succeeded: bool  # False: a declined charge, no money moved
    failureReason: str | None
    createdAt: str


class LedgerRefund(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    idempotencyKey: str
    refundId: str
    chargeId: str
    amountCents: int
    createdAt: str


class IdempotencyMismatch(Exception):
    """A key reused for a different charge: a bug on the merchant's side (Stripe answers 400)."""


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS charges (
        provider TEXT NOT NULL, idempotency_key TEXT NOT NULL, charge_id TEXT NOT NULL UNIQUE,
        amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, succeeded INTEGER NOT NULL,
        failure_reason TEXT, created_at TEXT NOT NULL, PRIMARY KEY (provider, idempotency_key))""",
    # One refund per charge (full refunds only): a second refund of a charge answers the first.
    """CREATE TABLE IF NOT EXISTS refunds (
        provider TEXT NOT NULL, idempotency_key TEXT NOT NULL, refund_id TEXT NOT NULL UNIQUE,
        charge_id TEXT NOT NULL UNIQUE, amount_cents INTEGER NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (provider, idempotency_key))""",
)


class ProviderLedger:
    """The providers' books: one SQLite database (a file, or memory), one connection, one lock.

    Statements take microseconds and run inline, as the SQLite adapter's do. Another process
    (a test, a chaos harness) may open the same file to read it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        path = ledger_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False,
                                     isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=5000")
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        with self._lock:
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- what providers do -----------------------------------------------------------------
    def book_charge(self, provider: str, key: str, charge_id: str, amount_cents: int, currency: str,
                    failure_reason: str | None) -> LedgerCharge:
        """Book a charge under `key`, or answer the one already booked under it."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO charges (provider, idempotency_key, charge_id, amount_cents, currency, "
                "succeeded, failure_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (provider, key, charge_id, amount_cents, currency, int(failure_reason is None), failure_reason,
                 utc_now_iso()))
            booked = self._charge(provider, key)
        assert booked is not None
        if (booked.amountCents, booked.currency) != (amount_cents, currency):
            raise IdempotencyMismatch(f"{provider}: key {key} was used for another charge")
        return booked

    def find_charge(self, provider: str, key: str) -> LedgerCharge | None:
        with self._lock:
            return self._charge(provider, key)

    def book_refund(self, provider: str, key: str, refund_id: str, charge_id: str) -> LedgerRefund | None:
        """Refund a captured charge once; None when nothing was captured under `charge_id`."""
        with self._lock:
            row = self._conn.execute(
                "SELECT amount_cents FROM charges WHERE provider = ? AND charge_id = ? AND succeeded = 1",
                (provider, charge_id)).fetchone()
            if row is None:
                return None
            self._conn.execute(
                "INSERT OR IGNORE INTO refunds (provider, idempotency_key, refund_id, charge_id, amount_cents, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (provider, key, refund_id, charge_id, row[0], utc_now_iso()))
            found = self._conn.execute(f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE charge_id = ?",
                                       (charge_id,)).fetchone()
        return _refund_of(found)

    # -- what an auditor reads -------------------------------------------------------------
    def charges(self) -> list[LedgerCharge]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_CHARGE_COLUMNS} FROM charges ORDER BY rowid").fetchall()
        return [_charge_of(row) for row in rows]

    def refunds(self) -> list[LedgerRefund]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_REFUND_COLUMNS} FROM refunds ORDER BY rowid").fetchall()
        return [_refund_of(row) for row in rows]

    def _charge(self, provider: str, key: str) -> LedgerCharge | None:
        row = self._conn.execute(f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE provider = ? AND idempotency_key = ?",
                                 (provider, key)).fetchone()
        return _charge_of(row) if row else None


_CHARGE_COLUMNS = "provider, idempotency_key, charge_id, amount_cents, currency, succeeded, failure_reason, created_at"
_REFUND_COLUMNS = "provider, idempotency_key, refund_id, charge_id, amount_cents, created_at"


def _charge_of(row: tuple) -> LedgerCharge:
    return LedgerCharge(provider=row[0], idempotencyKey=row[1], chargeId=row[2], amountCents=row[3],
                        currency=row[4], succeeded=bool(row[5]), failureReason=row[6], createdAt=row[7])


def _refund_of(row: tuple) -> LedgerRefund:
    return LedgerRefund(provider=row[0], idempotencyKey=row[1], refundId=row[2], chargeId=row[3],
                        amountCents=row[4], createdAt=row[5])


class MockProvider:
    name: ClassVar[str] = ""
    default_token: ClassVar[str] = ""
    charge_prefix: ClassVar[str] = ""
    refund_prefix: ClassVar[str] = ""
    # token -> failure reason (None: the charge succeeds)
    outcomes: ClassVar[dict[str, str | None]] = {}
    slow_tokens: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ledger: ProviderLedger, slow_delay_s: float | None = None) -> None:
        self.ledger = ledger
        self.slow_delay_s = slow_delay_s  # None: SLOW_TOKEN_DELAY_S

    def outcome(self, token: str | None) -> str | None:
        """The failure reason a token leads to, or None when it succeeds."""
        return self.outcomes.get(token or self.default_token, "invalid_token")

    async def charge(self, key: str, amount_cents: int, currency: str, token: str | None) -> ChargeResult:
        """Charge once per `key`: a key seen before answers the booked result, charging nothing."""
        charge_id = f"{self.charge_prefix}_{environment.token_hex(12)}"
        booked = self.ledger.book_charge(self.name, key, charge_id, amount_cents, currency, self.outcome(token))
        if token in self.slow_tokens:
            delay = SLOW_TOKEN_DELAY_S if self.slow_delay_s is None else self.slow_delay_s
            await asyncio.sleep(delay)  # booked, not yet answered
        return _result(booked)

    async def lookup(self, key: str) -> ChargeResult | None:
        """What became of the charge sent under `key`; None if it never reached the provider."""
        booked = self.ledger.find_charge(self.name, key)
        return _result(booked) if booked else None

    async def refund(self, key: str, provider_payment_id: str) -> str:
        """Give a captured charge back, once per charge and per `key`; returns the refund id.

        A charge that captured nothing (a decline) refunds nothing: its refund id is new each time.
        """
        refund_id = f"{self.refund_prefix}_{environment.token_hex(12)}"
        booked = self.ledger.book_refund(self.name, key, refund_id, provider_payment_id)
        return booked.refundId if booked else refund_id


def _result(booked: LedgerCharge) -> ChargeResult:
    return ChargeResult(provider_payment_id=booked.chargeId, succeeded=booked.succeeded,
                        failure_reason=booked.failureReason)


class StripeMock(MockProvider):
    name = "stripe"
    default_token = "tok_mastercard"
    charge_prefix = "ch"
    refund_prefix = "re"
    outcomes = {
        "tok_visa": None,
        "tok_visa_slow": None,
        "tok_mastercard": None,
        "tok_chargeDeclined": "card_declined",
        "tok_insufficientFunds": "insufficient_funds",
    }
    slow_tokens = frozenset({"tok_visa_slow"})


class PaymobMock(MockProvider):
    name = "paymob"
    default_token = "paymob_success"
    charge_prefix = "pm"
    refund_prefix = "pmr"
    outcomes = {"paymob_success": None, "paymob_success_slow": None, "paymob_declined": "declined"}
    slow_tokens = frozenset({"paymob_success_slow"})


def mock_providers(ledger: ProviderLedger, slow_delay_s: float | None = None) -> dict[str, MockProvider]:
    """The mocks; `slow_delay_s` (setting PROVIDER_SLOW_DELAY_MS) overrides SLOW_TOKEN_DELAY_S."""
    mocks = (StripeMock(ledger, slow_delay_s), PaymobMock(ledger, slow_delay_s))
    return {provider.name: provider for provider in mocks}


# -- where the books are ------------------------------------------------------------------------


def ledger_url(settings: Settings) -> str:
    """PROVIDER_LEDGER_URL, else `providers.sqlite` in the data dir (memory when ephemeral).

    A MySQL deployment keeps the file too: the books must not live in the database they audit.
    """
    if settings.provider_ledger_url:
        return settings.provider_ledger_url
    if settings.ephemeral:
        return f"sqlite://memory/providers-{id(settings)}"
    return f"sqlite:///{Path(settings.data_dir) / LEDGER_FILE}"


def ledger_path(url: str) -> Path | None:
    """The file behind a ledger URL; None for `sqlite://memory/<name>`."""
    if url.startswith("sqlite://memory/") and len(url) > len("sqlite://memory/"):
        return None
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve()
    raise ValueError(f"bad provider ledger URL {url!r}: expected sqlite:///<path> or sqlite://memory/<name>")


_open_ledgers: dict[str, tuple[object, ProviderLedger]] = {}
_open_lock = threading.Lock()


def ledger_for(settings: Settings) -> ProviderLedger:
    """The process's ledger for these settings, opened on first use and kept open.

    The settings object is kept with it: an in-memory ledger is named after `id(settings)`,
    and holding the object means no later settings can reuse that id and find old books.
    """
    url = ledger_url(settings)
    key = str(ledger_path(url) or url)
    with _open_lock:
        entry = _open_ledgers.get(key)
        if entry is None:
            entry = _open_ledgers[key] = (settings, ProviderLedger(url))
        return entry[1]
