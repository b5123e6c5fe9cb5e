"""The mock providers: test tokens, idempotency keys, and their books (a real SQLite ledger)."""

from __future__ import annotations

import re
import time

import pytest

from microcommerce.config import load_settings
from microcommerce.services.payment import providers
from microcommerce.services.payment.providers import (
    IdempotencyMismatch,
    PaymobMock,
    ProviderLedger,
    StripeMock,
    ledger_url,
    mock_providers,
)


@pytest.fixture
def ledger(tmp_path):
    books = ProviderLedger(f"sqlite:///{tmp_path / 'providers.sqlite'}")
    yield books
    books.close()


@pytest.mark.parametrize(("token", "reason"), [
    ("tok_visa", None), ("tok_mastercard", None), (None, None),
    ("tok_chargeDeclined", "card_declined"), ("tok_insufficientFunds", "insufficient_funds"),
    ("tok_unknown", "invalid_token"), ("paymob_success", "invalid_token"),
])
async def test_stripe_test_tokens(ledger, token, reason):
    result = await StripeMock(ledger).charge("k1", 1999, "USD", token)
    assert result.succeeded is (reason is None)
    assert result.failure_reason == reason
    assert re.fullmatch(r"ch_[0-9a-f]{24}", result.provider_payment_id)


@pytest.mark.parametrize(("token", "reason"), [
    (None, None), ("paymob_success", None), ("paymob_declined", "declined"), ("tok_visa", "invalid_token"),
])
async def test_paymob_test_tokens(ledger, token, reason):
    result = await PaymobMock(ledger).charge("k1", 500, "EGP", token)
    assert result.succeeded is (reason is None)
    assert result.failure_reason == reason
    assert result.provider_payment_id.startswith("pm_")


async def test_a_key_the_provider_has_seen_answers_the_same_and_charges_nothing_more(ledger):
    stripe = StripeMock(ledger)
    first = await stripe.charge("pay_1", 1999, "USD", "tok_visa")
    again = await stripe.charge("pay_1", 1999, "USD", "tok_chargeDeclined")  # the token no longer matters
    assert again == first and first.succeeded
    declined = await stripe.charge("pay_2", 1999, "USD", "tok_chargeDeclined")
    assert await stripe.charge("pay_2", 1999, "USD", "tok_visa") == declined  # a decline is booked too
    assert [(c.idempotencyKey, c.succeeded) for c in ledger.charges()] == [("pay_1", True), ("pay_2", False)]
    with pytest.raises(IdempotencyMismatch):
        await stripe.charge("pay_1", 2000, "USD", "tok_visa")


async def test_keys_are_per_provider(ledger):
    books = mock_providers(ledger)
    stripe = await books["stripe"].charge("same", 100, "USD", None)
    paymob = await books["paymob"].charge("same", 100, "USD", None)
    assert stripe.provider_payment_id != paymob.provider_payment_id
    assert await books["stripe"].lookup("same") == stripe
    assert await books["paymob"].lookup("nope") is None


async def test_refunds_give_captured_money_back_once_per_charge(ledger):
    stripe = StripeMock(ledger)
    ok = await stripe.charge("pay_1", 1999, "USD", "tok_visa")
    declined = await stripe.charge("pay_2", 1999, "USD", "tok_chargeDeclined")
    first = await stripe.refund("refund_pay_1", ok.provider_payment_id)
    assert first.startswith("re_")
    assert await stripe.refund("refund_pay_1", ok.provider_payment_id) == first  # same key: same refund
    assert await stripe.refund("another_key", ok.provider_payment_id) == first  # one refund per charge
    assert (await stripe.refund("refund_pay_2", declined.provider_payment_id)).startswith("re_")
    refunds = ledger.refunds()
    assert [(r.chargeId, r.amountCents, r.refundId) for r in refunds] == [(ok.provider_payment_id, 1999, first)]


async def test_a_slow_token_is_booked_before_the_provider_answers(ledger, monkeypatch):
    monkeypatch.setattr(providers, "SLOW_TOKEN_DELAY_S", 0.2)
    started = time.monotonic()
    result = await StripeMock(ledger).charge("pay_slow", 100, "USD", "tok_visa_slow")
    assert result.succeeded and time.monotonic() - started >= 0.2
    assert (await PaymobMock(ledger).charge("pay_slow", 100, "EGP", "paymob_success_slow")).succeeded


async def test_the_books_are_durable_and_readable_from_another_connection(tmp_path):
    url = f"sqlite:///{tmp_path / 'books' / 'providers.sqlite'}"
    writer = ProviderLedger(url)
    charged = await StripeMock(writer).charge("pay_1", 700, "USD", None)
    reader = ProviderLedger(url)
    try:
        assert [c.chargeId for c in reader.charges()] == [charged.provider_payment_id]
    finally:
        reader.close()
        writer.close()


def test_where_the_books_are():
    assert ledger_url(load_settings({"data_dir": "/srv/mc"}, env={})) == "sqlite:////srv/mc/providers.sqlite"
    ephemeral = load_settings({"ephemeral": True}, env={})
    assert ledger_url(ephemeral).startswith("sqlite://memory/providers-")
    mysql = load_settings({"database_url": "mysql://root@db/mc_{service}", "data_dir": "/d"}, env={})
    assert ledger_url(mysql) == "sqlite:////d/providers.sqlite"  # never inside the audited database
    chosen = load_settings({}, env={"PROVIDER_LEDGER_URL": "sqlite:///books.sqlite"})
    assert ledger_url(chosen) == "sqlite:///books.sqlite"


@pytest.mark.parametrize("url", ["mysql://root@db/books", "books.sqlite", "sqlite://memory/"])
def test_a_bad_ledger_url_is_a_config_error(url):
    from microcommerce.config import ConfigError

    with pytest.raises(ConfigError, match="PROVIDER_LEDGER_URL"):
        load_settings({}, env={"PROVIDER_LEDGER_URL": url})


async def test_the_slow_tokens_delay_can_be_configured(tmp_path):
    ledger = ProviderLedger(f"sqlite:///{tmp_path}/books.sqlite")
    stripe = mock_providers(ledger, slow_delay_s=0.05)["stripe"]
    started = time.monotonic()
    result = await stripe.charge("key-slow-configured", 500, "USD", "tok_visa_slow")
    assert result.succeeded and 0.05 <= time.monotonic() - started < 1.0
