"""Broker use cases on the in-memory store: ownership, idempotent links, relink marking, stale-if-error, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.broker.adapters.memory import InMemoryLinkRepository
from services.broker.adapters.paper import PaperConnector, PaperSession, ReferenceMarks
from services.broker.adapters.secrets import KeyringSecretBox
from services.broker.app import BrokerApp, TransactionQuery
from services.broker.domain.errors import (
    AccountAlreadyLinked,
    AccountNotFound,
    BrokerLinkNotFound,
    BrokerUnauthorized,
    BrokerUnavailable,
    ContractExpired,
    EnvironmentNotConfigured,
    FieldRequired,
    NoLinkedAccount,
    PageTokenInvalid,
    TimeRangeInvalid,
    TooManySymbols,
)
from services.broker.domain.model import BreakerSnapshot, Credential, Environment, LinkStatus
from services.broker.domain.paper import paper_account_number
from services.platform.clock import FakeClock
from services.platform.crypto import SecretKeyring

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


class ScriptedSession:
    """A 'Tastytrade' session serving the paper book of the account its refresh token names, with faults."""

    def __init__(self, inner: PaperSession, faults: list[Exception], calls: list[str]) -> None:
        self._inner = inner
        self._faults = faults
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            if self._faults:
                raise self._faults.pop(0)
            return await target(*args, **kwargs)

        return call


class ScriptedConnector:
    def __init__(self, clock: FakeClock) -> None:
        self._paper = PaperConnector(clock=clock, marks=ReferenceMarks(clock))
        self.faults: list[Exception] = []
        self.calls: list[str] = []
        self.opened: list[Credential] = []

    @property
    def environment(self) -> Environment:
        return Environment.PRODUCTION

    def open_session(self, credential: Credential) -> ScriptedSession:
        self.opened.append(credential)
        return ScriptedSession(self._paper.open_session(Credential(f"PAPER{credential.refresh_token[-6:]}")), self.faults, self.calls)

    def health(self) -> BreakerSnapshot:
        return BreakerSnapshot(Environment.PRODUCTION, "closed", 0, None, 1.0)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def tasty(clock: FakeClock) -> ScriptedConnector:
    return ScriptedConnector(clock)


def make_app(clock: FakeClock, tasty: ScriptedConnector, **kw: Any) -> BrokerApp:
    ids = iter(f"link-{i}" for i in range(100))
    return BrokerApp(
        connectors={Environment.PRODUCTION: tasty, Environment.PAPER: PaperConnector(clock=clock, marks=ReferenceMarks(clock))},
        links=InMemoryLinkRepository(),
        secrets=KeyringSecretBox(SecretKeyring({1: b"k" * 32})),
        clock=clock,
        new_id=lambda: next(ids),
        **kw,
    )


@pytest.fixture
def app(clock: FakeClock, tasty: ScriptedConnector) -> BrokerApp:
    return make_app(clock, tasty)


async def test_linking_paper_gives_the_users_demo_account(app: BrokerApp) -> None:
    result = await app.link_account("alice", environment=Environment.PAPER)
    assert [a.account.account_number for a in result.accounts] == [paper_account_number("alice")]
    page = await app.list_accounts("alice")
    assert [a.account.account_number for a in page.items] == [paper_account_number("alice")]


async def test_link_with_same_request_id_returns_the_first_link(app: BrokerApp, tasty: ScriptedConnector) -> None:
    first = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001", request_id="r1")
    again = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001", request_id="r1")
    assert again.link.link_id == first.link.link_id
    assert len(tasty.opened) == 1


async def test_tastytrade_link_needs_a_refresh_token(app: BrokerApp) -> None:
    with pytest.raises(FieldRequired, match="refresh_token"):
        await app.link_account("alice", environment=Environment.PRODUCTION)


async def test_disabled_environment_is_refused(app: BrokerApp) -> None:
    with pytest.raises(EnvironmentNotConfigured):
        await app.link_account("alice", environment=Environment.SANDBOX, refresh_token="x")


async def test_another_users_account_is_not_found(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PAPER)
    with pytest.raises(AccountNotFound):
        await app.get_balances("bob", paper_account_number("alice"))


async def test_account_linked_by_another_user_cannot_be_linked_again(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")
    with pytest.raises(AccountAlreadyLinked):
        await app.link_account("bob", environment=Environment.PRODUCTION, refresh_token="rt-000001")


async def test_relinking_the_same_login_keeps_the_link(app: BrokerApp) -> None:
    first = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")
    second = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")
    assert second.link.link_id == first.link.link_id
    assert len(await app.list_links("alice")) == 1


async def test_refused_credential_marks_the_link_for_relinking(app: BrokerApp, tasty: ScriptedConnector) -> None:
    result = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")
    number = result.accounts[0].account.account_number
    tasty.faults.append(BrokerUnauthorized("refresh token revoked"))
    with pytest.raises(BrokerUnauthorized):
        await app.get_balances("alice", number)
    [link] = await app.list_links("alice")
    assert link.status is LinkStatus.NEEDS_RELINK


async def test_session_is_reused_across_calls(app: BrokerApp, tasty: ScriptedConnector) -> None:
    result = await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")
    number = result.accounts[0].account.account_number
    await app.get_balances("alice", number)
    await app.list_positions("alice", number)
    assert len(tasty.opened) == 1


async def test_last_good_balances_are_served_while_the_broker_is_down(
    app: BrokerApp, tasty: ScriptedConnector, clock: FakeClock
) -> None:
    number = (await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")).accounts[0].account.account_number
    good = await app.get_balances("alice", number)
    tasty.faults.append(BrokerUnavailable("down"))
    assert await app.get_balances("alice", number) == good


async def test_stale_balances_are_not_served_after_the_limit(
    clock: FakeClock, tasty: ScriptedConnector
) -> None:
    app = make_app(clock, tasty, stale_after=60.0)
    number = (await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")).accounts[0].account.account_number
    await app.get_balances("alice", number)
    clock.advance(61)
    tasty.faults.append(BrokerUnavailable("down"))
    with pytest.raises(BrokerUnavailable):
        await app.get_balances("alice", number)


async def test_positions_filter_by_underlying_and_sort_by_symbol(app: BrokerApp) -> None:
    number = paper_account_number("alice")
    await app.link_account("alice", environment=Environment.PAPER)
    page = await app.list_positions("alice", number, underlying_symbols=["tsla"])
    symbols = [p.symbol for p in page.items]
    assert symbols == sorted(symbols) and {p.underlying_symbol for p in page.items} == {"TSLA"}


async def test_transactions_page_through_the_whole_history(app: BrokerApp) -> None:
    number = paper_account_number("alice")
    await app.link_account("alice", environment=Environment.PAPER)
    everything = (await app.list_transactions("alice", number, TransactionQuery(), page_size=2000)).items
    collected, token = [], ""
    while True:
        page = await app.list_transactions("alice", number, TransactionQuery(), page_size=7, page_token=token)
        collected += page.items
        token = page.next_page_token
        if not token:
            break
    assert collected == everything and len(everything) > 20


async def test_transaction_filters_apply(app: BrokerApp) -> None:
    number = paper_account_number("alice")
    await app.link_account("alice", environment=Environment.PAPER)
    start = NOW - timedelta(days=30)
    page = await app.list_transactions(
        "alice", number, TransactionQuery(start_time=start, underlying_symbol="spy", transaction_types=("Trade",)), page_size=500
    )
    assert page.items
    assert all(t.executed_at >= start and t.underlying_symbol == "SPY" and t.transaction_type == "Trade" for t in page.items)


async def test_inverted_time_range_is_refused(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PAPER)
    with pytest.raises(TimeRangeInvalid):
        await app.list_transactions(
            "alice", paper_account_number("alice"), TransactionQuery(start_time=NOW, end_time=NOW - timedelta(days=1))
        )


async def test_page_token_of_another_filter_is_refused(app: BrokerApp) -> None:
    number = paper_account_number("alice")
    await app.link_account("alice", environment=Environment.PAPER)
    page = await app.list_transactions("alice", number, TransactionQuery(), page_size=3)
    with pytest.raises(PageTokenInvalid):
        await app.list_transactions(
            "alice", number, TransactionQuery(underlying_symbol="SPY"), page_size=3, page_token=page.next_page_token
        )


async def test_history_is_fetched_once_while_paging(app: BrokerApp, tasty: ScriptedConnector) -> None:
    number = (await app.link_account("alice", environment=Environment.PRODUCTION, refresh_token="rt-000001")).accounts[0].account.account_number
    page = await app.list_transactions("alice", number, TransactionQuery(), page_size=5)
    await app.list_transactions("alice", number, TransactionQuery(), page_size=5, page_token=page.next_page_token)
    assert tasty.calls.count("list_transactions") == 1


async def test_chain_needs_a_linked_account(app: BrokerApp) -> None:
    with pytest.raises(NoLinkedAccount):
        await app.get_option_chain("alice", "SPY")


async def test_auto_linked_demo_answers_without_an_explicit_link(clock: FakeClock, tasty: ScriptedConnector) -> None:
    app = make_app(clock, tasty, auto_link_paper=True)
    chains = await app.get_option_chain("carol", "spy")
    assert chains[0].underlying_symbol == "SPY"
    assert [a.account.account_number for a in (await app.list_accounts("carol")).items] == [paper_account_number("carol")]


async def test_market_metrics_come_with_the_brokers_rate(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PAPER)
    metrics, rate = await app.get_market_metrics("alice", ["AAPL", "ZZZZ", "aapl"])
    assert [m.symbol for m in metrics] == ["AAPL"] and rate == Decimal("0.0425")


async def test_market_metrics_limits(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PAPER)
    with pytest.raises(FieldRequired):
        await app.get_market_metrics("alice", [" "])
    with pytest.raises(TooManySymbols):
        await app.get_market_metrics("alice", [f"S{i}" for i in range(501)])


async def test_model_inputs_come_from_the_broker(app: BrokerApp) -> None:
    await app.link_account("alice", environment=Environment.PAPER)
    expires = NOW + timedelta(days=73)
    inputs = await app.model_inputs("alice", "AAPL", expires)
    assert inputs.risk_free_rate == pytest.approx(0.0425)
    assert inputs.dividend_yield == pytest.approx(0.0051) and inputs.beta == pytest.approx(1.27)
    assert inputs.time_to_expiry == pytest.approx(73 / 365)
    with pytest.raises(ContractExpired):
        await app.model_inputs("alice", "AAPL", NOW - timedelta(seconds=1))


async def test_deleting_a_link_forgets_its_accounts(app: BrokerApp) -> None:
    result = await app.link_account("alice", environment=Environment.PAPER)
    await app.delete_link("alice", result.link.link_id)
    assert (await app.list_accounts("alice")).items == []
    with pytest.raises(BrokerLinkNotFound):
        await app.delete_link("alice", result.link.link_id)


async def test_another_user_cannot_delete_a_link(app: BrokerApp) -> None:
    result = await app.link_account("alice", environment=Environment.PAPER)
    with pytest.raises(BrokerLinkNotFound):
        await app.delete_link("bob", result.link.link_id)


