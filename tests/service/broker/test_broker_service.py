"""BrokerService end to end over gRPC: identity, every RPC, the error contract (codes and reasons)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.broker.api.convert import from_money
from services.platform.error_mapping import RichError, decode_error
from tastyplat.broker.v1 import broker_service_pb2 as pb
from tastyplat.type.v1 import option_pb2

from tests.service.broker.broker_harness import BrokerHarness, bearer

ALICE, BOB = bearer("alice"), bearer("bob")


async def fails(call: object) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return decode_error(caught.value)


async def link_tastytrade(h: BrokerHarness, who: tuple[tuple[str, str]] = ALICE, token: str = "refresh-alice") -> pb.LinkAccountResponse:
    request = pb.LinkAccountRequest(broker=pb.BROKER_TASTYTRADE, refresh_token=token)
    return await h.stub.LinkAccount(request, metadata=who)


async def test_calls_without_an_access_token_are_unauthenticated(harness: BrokerHarness) -> None:
    error = await fails(harness.stub.ListAccounts(pb.ListAccountsRequest()))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_REQUIRED")


async def test_a_forged_token_is_unauthenticated(harness: BrokerHarness) -> None:
    error = await fails(harness.stub.ListAccounts(pb.ListAccountsRequest(), metadata=(("authorization", "Bearer abc.def.ghi"),)))
    assert error.code is grpc.StatusCode.UNAUTHENTICATED


async def test_unspecified_broker_is_field_required(harness: BrokerHarness) -> None:
    error = await fails(harness.stub.LinkAccount(pb.LinkAccountRequest(), metadata=ALICE))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")
    assert error.field_violations[0][0] == "broker"


async def test_paper_link_serves_the_demo_account(harness: BrokerHarness) -> None:
    linked = await harness.stub.LinkAccount(pb.LinkAccountRequest(broker=pb.BROKER_PAPER), metadata=ALICE)
    [account] = linked.accounts
    assert account.broker == pb.BROKER_PAPER and linked.broker_link.state == pb.BROKER_LINK_STATE_ACTIVE
    balances = (await harness.stub.GetBalances(pb.GetBalancesRequest(account_number=account.account_number), metadata=ALICE)).balances
    assert from_money(balances.net_liquidating_value) > 0 and balances.cash_balance.currency_code == "USD"
    positions = await harness.stub.ListPositions(pb.ListPositionsRequest(account_number=account.account_number), metadata=ALICE)
    options = [p for p in positions.positions if p.instrument_type == option_pb2.INSTRUMENT_TYPE_EQUITY_OPTION]
    assert {p.underlying_symbol for p in options} == {"SPY", "QQQ", "AAPL", "TSLA"}
    assert all(p.option.expiration_time.seconds > 0 and p.option.style == option_pb2.EXERCISE_STYLE_AMERICAN for p in options)
    assert {p.quantity_direction for p in options} == {pb.QUANTITY_DIRECTION_LONG, pb.QUANTITY_DIRECTION_SHORT}


async def test_tastytrade_link_discovers_the_accounts(harness: BrokerHarness) -> None:
    linked = await link_tastytrade(harness)
    assert sorted(linked.broker_link.account_numbers) == ["5WT00001", "5WT00002", "5WT00003"]
    open_only = await harness.stub.ListAccounts(pb.ListAccountsRequest(), metadata=ALICE)
    everything = await harness.stub.ListAccounts(pb.ListAccountsRequest(include_closed=True), metadata=ALICE)
    assert [a.account_number for a in open_only.accounts] == ["5WT00001", "5WT00002"]
    assert len(everything.accounts) == 3
    assert open_only.accounts[0].margin_type == pb.MARGIN_TYPE_MARGIN
    assert open_only.accounts[0].authority_level == pb.AUTHORITY_LEVEL_OWNER


async def test_balances_carry_signed_money(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    balances = (await harness.stub.GetBalances(pb.GetBalancesRequest(account_number="5WT00001"), metadata=ALICE)).balances
    assert from_money(balances.cash_balance) == Decimal("51600.762")
    assert from_money(balances.pending_cash) == Decimal("-125.5")


async def test_positions_page_with_tokens(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    symbols, token = [], ""
    while True:
        page = await harness.stub.ListPositions(
            pb.ListPositionsRequest(account_number="5WT00001", page_size=3, page_token=token), metadata=ALICE
        )
        symbols += [p.symbol for p in page.positions]
        token = page.next_page_token
        if not token:
            break
    assert len(symbols) == 8 and symbols == sorted(symbols)


async def test_transactions_list_every_broker_page(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    response = await harness.stub.ListTransactions(
        pb.ListTransactionsRequest(account_number="5WT00001", page_size=2000), metadata=ALICE
    )
    assert len(response.transactions) == 620 and not response.next_page_token
    trades = [t for t in response.transactions if t.transaction_type == pb.TRANSACTION_TYPE_TRADE]
    assert any(from_money(t.commission) < 0 for t in trades)
    assert any(t.option.symbol and t.option.kind for t in trades)


async def test_transaction_type_filter_must_be_set(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    error = await fails(
        harness.stub.ListTransactions(
            pb.ListTransactionsRequest(account_number="5WT00001", transaction_types=[pb.TRANSACTION_TYPE_UNSPECIFIED]),
            metadata=ALICE,
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")


async def test_option_chain_is_nested_and_ascending(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    [chain] = (await harness.stub.GetOptionChain(pb.GetOptionChainRequest(underlying_symbol="SPY"), metadata=ALICE)).chains
    times = [e.expiration_time.seconds for e in chain.expirations]
    assert times == sorted(times)
    strikes = [s.strike_price for s in chain.expirations[0].strikes]
    assert strikes == sorted(strikes) and chain.multiplier == 100


async def test_market_metrics_come_with_the_risk_free_rate(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    response = await harness.stub.GetMarketMetrics(pb.GetMarketMetricsRequest(symbols=["AAPL", "TSLA"]), metadata=ALICE)
    assert response.risk_free_rate == pytest.approx(0.0425)
    assert [m.symbol for m in response.metrics] == ["AAPL", "TSLA"]
    assert response.metrics[0].beta == pytest.approx(1.265634436)


async def test_another_users_account_is_not_found(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    error = await fails(harness.stub.GetBalances(pb.GetBalancesRequest(account_number="5WT00001"), metadata=BOB))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_an_account_linked_by_another_user_is_already_exists(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    error = await fails(link_tastytrade(harness, BOB))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ACCOUNT_ALREADY_LINKED")


async def test_refused_refresh_token_is_failed_precondition(harness: BrokerHarness) -> None:
    error = await fails(link_tastytrade(harness, token="not-a-grant"))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BROKER_UNAUTHORIZED")


async def test_chain_without_a_link_is_no_linked_account(harness: BrokerHarness) -> None:
    error = await fails(harness.stub.GetOptionChain(pb.GetOptionChainRequest(underlying_symbol="SPY"), metadata=BOB))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_LINKED_ACCOUNT")


async def test_persistent_429_is_resource_exhausted_with_retry_info(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    harness.fake.fail_next(429, count=10, path_prefix="/option-chains")
    error = await fails(harness.stub.GetOptionChain(pb.GetOptionChainRequest(underlying_symbol="SPY"), metadata=ALICE))
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "BROKER_RATE_LIMITED")
    assert error.retry_after is not None


async def test_outage_is_unavailable_and_health_reports_the_open_breaker(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    harness.fake.down = True
    error = await fails(harness.stub.GetOptionChain(pb.GetOptionChainRequest(underlying_symbol="SPY"), metadata=ALICE))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "BROKER_UNAVAILABLE")
    health = health_pb2_grpc.HealthStub(harness.channel)
    name = harness.components.health_names()[next(iter(harness.components.health_names()))]
    for _ in range(40):
        status = (await health.Check(health_pb2.HealthCheckRequest(service=name))).status
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.1)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert overall.status == health_pb2.HealthCheckResponse.SERVING  # paper and cached data still served


async def test_last_good_balances_survive_an_outage(harness: BrokerHarness) -> None:
    await link_tastytrade(harness)
    request = pb.GetBalancesRequest(account_number="5WT00001")
    good = await harness.stub.GetBalances(request, metadata=ALICE)
    harness.fake.down = True
    assert await harness.stub.GetBalances(request, metadata=ALICE) == good


async def test_link_request_id_makes_linking_idempotent(harness: BrokerHarness) -> None:
    request = pb.LinkAccountRequest(broker=pb.BROKER_TASTYTRADE, refresh_token="refresh-alice", request_id="req-1")
    first = await harness.stub.LinkAccount(request, metadata=ALICE)
    again = await harness.stub.LinkAccount(request, metadata=ALICE)
    assert again.broker_link.broker_link_id == first.broker_link.broker_link_id
    assert harness.fake.count("POST", "/oauth/token") == 1


async def test_deleted_link_stops_serving_its_accounts(harness: BrokerHarness) -> None:
    linked = await link_tastytrade(harness)
    await harness.stub.DeleteBrokerLink(pb.DeleteBrokerLinkRequest(broker_link_id=linked.broker_link.broker_link_id), metadata=ALICE)
    error = await fails(harness.stub.GetBalances(pb.GetBalancesRequest(account_number="5WT00001"), metadata=ALICE))
    assert error.reason == "ACCOUNT_NOT_FOUND"
    again = await fails(
        harness.stub.DeleteBrokerLink(pb.DeleteBrokerLinkRequest(broker_link_id=linked.broker_link.broker_link_id), metadata=ALICE)
    )
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "BROKER_LINK_NOT_FOUND")
