"""The Tastytrade client against the fake API: OAuth, headers, envelope, pagination, errors, resilience."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from services.broker.adapters.resilience import BreakerState
from services.broker.adapters.tastytrade.connector import TastytradeConnector
from services.broker.domain.errors import (
    AccountNotFound,
    BrokerRateLimited,
    BrokerUnauthorized,
    BrokerUnavailable,
    CircuitOpen,
    RequestBudgetExhausted,
    SymbolNotFound,
)
from services.broker.domain.model import Credential, Environment, ExerciseStyle, QuantityDirection
from tests.fakes.tastytrade_api import FakeTastytrade, SharedTime

Make = Callable[..., TastytradeConnector]
ALICE = Credential("refresh-alice")


async def test_refresh_token_grant_is_sent_as_documented(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    token_call = fake.requests[0]
    assert (token_call.method, token_call.path) == ("POST", "/oauth/token")
    assert "Authorization" not in token_call.headers
    assert token_call.json == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-alice",
        "client_secret": "provider-secret",
        "client_id": "provider-client-id",
    }
    assert fake.requests[1].headers["Authorization"].startswith("Bearer access-")


async def test_production_calls_carry_user_agent_and_accept_version(fake: FakeTastytrade, make_connector: Make) -> None:
    await make_connector(fake).open_session(ALICE).list_accounts()
    headers = fake.requests[-1].headers
    assert headers["User-Agent"] == "tastyplat/0.1.0"
    assert headers["Accept-Version"] == "20251101"


async def test_sandbox_calls_omit_accept_version(sandbox_fake: FakeTastytrade, make_connector: Make) -> None:
    accounts = await make_connector(sandbox_fake, Environment.SANDBOX).open_session(ALICE).list_accounts()
    assert accounts and all("Accept-Version" not in r.headers for r in sandbox_fake.requests)


async def test_missing_user_agent_gets_401(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake, user_agent="").open_session(ALICE)
    with pytest.raises(BrokerUnauthorized, match="User-Agent"):
        await session.list_accounts()


async def test_access_token_is_reused_until_near_expiry(
    fake: FakeTastytrade, make_connector: Make, shared_time: SharedTime
) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    shared_time.advance(600)
    await session.list_accounts()
    assert fake.count("POST", "/oauth/token") == 1


async def test_access_token_is_renewed_before_its_15_minutes_run_out(
    fake: FakeTastytrade, make_connector: Make, shared_time: SharedTime
) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    shared_time.advance(900 - 30)  # inside the 60 s margin, still valid at the fake
    await session.list_accounts()
    assert fake.count("POST", "/oauth/token") == 2
    assert 401 not in fake.statuses


async def test_fake_expires_access_tokens_after_15_minutes(fake: FakeTastytrade, shared_time: SharedTime) -> None:
    headers = {"User-Agent": "test/1.0"}
    async with httpx.AsyncClient(base_url=fake.url, headers=headers) as client:
        grant = {"grant_type": "refresh_token", "refresh_token": "refresh-alice", "client_secret": fake.client_secret}
        token = (await client.post("/oauth/token", json=grant)).json()
        assert token["expires_in"] == 900
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await client.get("/customers/me/accounts", headers=bearer)).status_code == 200
        shared_time.advance(901)
        expired = await client.get("/customers/me/accounts", headers=bearer)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_session"


async def test_a_401_renews_the_token_and_repeats_the_call_once(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    fake.expire_access_tokens()
    accounts = await session.list_accounts()
    assert [a.account_number for a in accounts][:2] == ["5WT00001", "5WT00002"]
    assert fake.count("POST", "/oauth/token") == 2
    assert fake.count("GET", "/customers/me/accounts") == 3


async def test_concurrent_401s_share_one_renewal(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    fake.expire_access_tokens()
    await asyncio.gather(*(session.list_accounts() for _ in range(5)))
    assert fake.count("POST", "/oauth/token") == 2


async def test_revoked_refresh_token_is_broker_unauthorized(fake: FakeTastytrade, make_connector: Make) -> None:
    fake.revoke_refresh_token("refresh-alice")
    with pytest.raises(BrokerUnauthorized, match="revoked"):
        await make_connector(fake).open_session(ALICE).list_accounts()


async def test_rfc6749_oauth_error_shape_is_understood(shared_time: SharedTime, make_connector: Make) -> None:
    async with FakeTastytrade(clock=shared_time.epoch, oauth_error_style="rfc6749") as server:
        with pytest.raises(BrokerUnauthorized) as caught:
            await make_connector(server).open_session(Credential("nope")).list_accounts()
    assert caught.value.metadata["broker_code"] == "invalid_grant"


async def test_wrong_client_secret_is_broker_unauthorized(fake: FakeTastytrade, make_connector: Make) -> None:
    with pytest.raises(BrokerUnauthorized):
        await make_connector(fake, client_secret="wrong").open_session(ALICE).list_accounts()


async def test_a_grants_own_client_secret_is_used_without_the_platform_client_id(
    fake: FakeTastytrade, make_connector: Make
) -> None:
    fake.client_secret = "users-own-app-secret"
    await make_connector(fake).open_session(Credential("refresh-alice", "users-own-app-secret")).list_accounts()
    assert fake.requests[0].json["client_secret"] == "users-own-app-secret"
    assert "client_id" not in fake.requests[0].json


async def test_balances_positions_and_transactions_parse(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    balances = await session.get_balances("5WT00001")
    assert balances.pending_cash == Decimal("-125.5")
    positions = await session.list_positions("5WT00001")
    shorts = [p for p in positions if p.direction is QuantityDirection.SHORT]
    assert shorts and all(p.quantity < 0 for p in shorts)
    expected = balances.cash_balance + balances.long_equity_value + balances.long_derivative_value - balances.short_derivative_value
    assert balances.net_liquidating_value == expected


async def test_every_transaction_page_is_fetched(fake: FakeTastytrade, make_connector: Make) -> None:
    transactions = await make_connector(fake).open_session(ALICE).list_transactions("5WT00001")
    assert len(transactions) == 620
    offsets = [dict(r.query)["page-offset"] for r in fake.requests if r.path.endswith("/transactions")]
    assert offsets == ["0", "1", "2"]
    assert [t.executed_at for t in transactions] == sorted((t.executed_at for t in transactions), reverse=True)


async def test_an_item_repeated_across_a_page_boundary_is_kept_once(fake: FakeTastytrade, make_connector: Make) -> None:
    rows = fake.customers["me-1001"].accounts["5WT00001"].transactions
    session = make_connector(fake, per_page=250).open_session(ALICE)
    original_first = await session.list_transactions("5WT00001")
    # A new transaction landing mid-pagination shifts later pages by one; simulate with a duplicate row.
    rows.insert(250, dict(rows[249]))
    again = await session.list_transactions("5WT00001")
    assert [t.id for t in again] == [t.id for t in original_first]


async def test_empty_history_is_an_empty_list(fake: FakeTastytrade, make_connector: Make) -> None:
    assert await make_connector(fake).open_session(ALICE).list_transactions("5WT00003") == []


async def test_unknown_account_is_account_not_found(fake: FakeTastytrade, make_connector: Make) -> None:
    with pytest.raises(AccountNotFound):
        await make_connector(fake).open_session(ALICE).get_balances("5WT00009")


async def test_nested_chain_for_spx_has_both_roots(fake: FakeTastytrade, make_connector: Make) -> None:
    chains = await make_connector(fake).open_session(ALICE).get_option_chain("SPX")
    assert {c.root_symbol for c in chains} == {"SPX", "SPXW"}
    assert all(c.exercise_style is ExerciseStyle.EUROPEAN for c in chains)


async def test_unknown_chain_is_symbol_not_found(fake: FakeTastytrade, make_connector: Make) -> None:
    with pytest.raises(SymbolNotFound):
        await make_connector(fake).open_session(ALICE).get_option_chain("NOPE")


async def test_market_metrics_use_a_comma_list_and_are_cached(fake: FakeTastytrade, make_connector: Make) -> None:
    connector = make_connector(fake)
    first = await connector.open_session(ALICE).get_market_metrics(["AAPL", "TSLA"])
    second = await connector.open_session(ALICE).get_market_metrics(["TSLA"])
    assert [m.symbol for m in first] == ["AAPL", "TSLA"] and second[0].beta == Decimal("2.08")
    calls = [r for r in fake.requests if r.path == "/market-metrics"]
    assert len(calls) == 1 and dict(calls[0].query)["symbols"] == "AAPL,TSLA"


async def test_risk_free_rate_is_fetched_without_a_bearer_token(fake: FakeTastytrade, make_connector: Make) -> None:
    assert await make_connector(fake).open_session(ALICE).get_risk_free_rate() == Decimal("0.0425")
    [call] = [r for r in fake.requests if r.path == "/margin-requirements-public-configuration"]
    assert "Authorization" not in call.headers


async def test_429_is_retried_with_backoff(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    fake.fail_next(429, count=2, path_prefix="/customers")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await session.list_accounts()
    assert fake.count("GET", "/customers/me/accounts") == 4
    assert loop.time() - started >= 0.01 + 0.02  # two exponential waits


async def test_persistent_429_is_broker_rate_limited(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    await session.list_accounts()
    fake.fail_next(429, count=10, path_prefix="/customers")
    with pytest.raises(BrokerRateLimited) as caught:
        await session.list_accounts()
    assert caught.value.retry_after is not None
    assert fake.count("GET", "/customers/me/accounts") == 1 + 4


async def test_5xx_is_retried(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake).open_session(ALICE)
    fake.fail_next(502, count=1, path_prefix="/customers")
    assert await session.list_accounts()


async def test_timeouts_are_retried_then_unavailable(fake: FakeTastytrade, make_connector: Make) -> None:
    session = make_connector(fake, timeout=0.1).open_session(ALICE)
    await session.list_accounts()
    fake.stall_next(0.5, count=10, path_prefix="/customers")
    with pytest.raises(BrokerUnavailable, match="timed out"):
        await session.list_accounts()


async def test_breaker_opens_fails_fast_then_closes_after_a_good_probe(
    fake: FakeTastytrade, make_connector: Make, shared_time: SharedTime
) -> None:
    connector = make_connector(fake, failure_threshold=3, reset_timeout=30.0)
    session = connector.open_session(ALICE)
    await session.list_accounts()
    fake.down = True
    with pytest.raises(BrokerUnavailable):
        await session.list_accounts()
    assert connector.breaker.state is BreakerState.OPEN
    assert connector.health().state == "open"
    sent = len(fake.requests)
    with pytest.raises(CircuitOpen):
        await session.list_accounts()
    assert len(fake.requests) == sent  # failed fast, nothing reached Tastytrade
    fake.down = False
    shared_time.advance(31)
    await session.get_balances("5WT00001")
    assert connector.breaker.state is BreakerState.CLOSED
    assert connector.health().state == "closed"


async def test_failed_probe_keeps_the_breaker_open(
    fake: FakeTastytrade, make_connector: Make, shared_time: SharedTime
) -> None:
    connector = make_connector(fake, failure_threshold=2, reset_timeout=30.0)
    session = connector.open_session(ALICE)
    await session.list_accounts()
    fake.down = True
    with pytest.raises(BrokerUnavailable):
        await session.list_accounts()
    shared_time.advance(31)
    with pytest.raises(BrokerUnavailable):
        await session.list_accounts()
    assert connector.breaker.state is BreakerState.OPEN


async def test_budget_keeps_a_burst_under_tastytrades_limit(fake: FakeTastytrade, make_connector: Make) -> None:
    # The fake throttles above 10 requests per half second; 20 calls at once must not trip it. The budget
    # (burst 4, then 10/s) lets through at most 4 + 5 requests in any half second.
    fake.request_limit = (10, 0.5)
    connector = make_connector(fake, budget_rate=10.0, budget_burst=4.0, budget_max_wait=10.0)
    session = connector.open_session(ALICE)
    await session.list_accounts()
    await asyncio.gather(*(session.get_balances("5WT00001") for _ in range(20)))
    assert 429 not in fake.statuses


async def test_without_a_budget_the_same_burst_is_throttled(fake: FakeTastytrade, make_connector: Make) -> None:
    fake.request_limit = (10, 0.5)
    session = make_connector(fake).open_session(ALICE)  # budget of 1000/s: effectively none
    await session.list_accounts()
    await asyncio.gather(*(session.get_balances("5WT00001") for _ in range(20)), return_exceptions=True)
    assert 429 in fake.statuses


async def test_budget_refuses_what_it_cannot_serve_in_time(fake: FakeTastytrade, make_connector: Make) -> None:
    connector = make_connector(fake, budget_rate=1.0, budget_burst=2.0, budget_max_wait=0.0)
    session = connector.open_session(ALICE)
    await session.list_accounts()  # token + call: the burst is spent
    with pytest.raises(RequestBudgetExhausted):
        await session.get_balances("5WT00001")


async def test_fake_throttles_with_a_bare_429(fake: FakeTastytrade) -> None:
    fake.fail_next(429)
    async with httpx.AsyncClient(base_url=fake.url, headers={"User-Agent": "test/1.0"}) as client:
        response = await client.get("/customers/me/accounts")
    assert response.status_code == 429
    assert not {"retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} & {
        k.lower() for k in response.headers
    }
