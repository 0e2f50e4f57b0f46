"""``tastyplat.broker.v1.BrokerService`` over grpc.aio: identity in, app call, messages out.

Domain errors are left to the platform interceptor, which maps them to ``google.rpc.Status``.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import grpc.aio

from services.broker.api import convert
from services.broker.app import BrokerApp, TransactionQuery
from services.broker.domain.errors import AuthenticationRequired
from services.broker.ports import IdentityVerifier
from tastyplat.broker.v1 import broker_service_pb2 as pb
from tastyplat.broker.v1 import broker_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BrokerService"].full_name


async def caller(context: Context, verifier: IdentityVerifier) -> str:
    """The verified user id of the call, from ``authorization: Bearer <access token>``.

    Raises:
        AuthenticationRequired: no bearer token, or one that does not verify.
    """
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return await verifier.verify(token.strip())
            break
    raise AuthenticationRequired("this call needs an access token: authorization: Bearer <token>")


class BrokerServicer(pb_grpc.BrokerServiceServicer):
    """The broker service's RPCs.

    Args:
        app: The use cases.
        verifier: Verifies callers' access tokens.
    """

    def __init__(self, app: BrokerApp, verifier: IdentityVerifier) -> None:
        self._app = app
        self._verifier = verifier

    async def LinkAccount(self, request: pb.LinkAccountRequest, context: Context) -> pb.LinkAccountResponse:
        """Link a Tastytrade login (refresh token) or the paper demo account."""
        user_id = await caller(context, self._verifier)
        environment = convert.environment_from(request.broker, request.environment)
        result = await self._app.link_account(
            user_id,
            environment=environment,
            refresh_token=request.refresh_token,
            client_secret=request.client_secret or None,
            request_id=request.request_id or None,
        )
        return pb.LinkAccountResponse(
            broker_link=convert.broker_link(result.link),
            accounts=[convert.account(a) for a in result.accounts],
        )

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: Context) -> pb.ListAccountsResponse:
        """The caller's linked accounts."""
        user_id = await caller(context, self._verifier)
        page = await self._app.list_accounts(
            user_id, include_closed=request.include_closed, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAccountsResponse(
            accounts=[convert.account(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def GetBalances(self, request: pb.GetBalancesRequest, context: Context) -> pb.GetBalancesResponse:
        """An account's balances."""
        user_id = await caller(context, self._verifier)
        balances = await self._app.get_balances(user_id, request.account_number)
        return pb.GetBalancesResponse(balances=convert.balances(balances))

    async def ListPositions(self, request: pb.ListPositionsRequest, context: Context) -> pb.ListPositionsResponse:
        """An account's positions."""
        user_id = await caller(context, self._verifier)
        page = await self._app.list_positions(
            user_id,
            request.account_number,
            underlying_symbols=list(request.underlying_symbols),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListPositionsResponse(
            positions=[convert.position(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: Context
    ) -> pb.ListTransactionsResponse:
        """An account's history, every broker page, newest first."""
        user_id = await caller(context, self._verifier)
        query = TransactionQuery(
            start_time=request.start_time.ToDatetime(tzinfo=timezone.utc) if request.HasField("start_time") else None,
            end_time=request.end_time.ToDatetime(tzinfo=timezone.utc) if request.HasField("end_time") else None,
            underlying_symbol=request.underlying_symbol,
            transaction_types=convert.transaction_types(list(request.transaction_types)),
        )
        page = await self._app.list_transactions(
            user_id, request.account_number, query, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTransactionsResponse(
            transactions=[convert.transaction(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def GetOptionChain(self, request: pb.GetOptionChainRequest, context: Context) -> pb.GetOptionChainResponse:
        """The nested chain(s) of an underlying."""
        user_id = await caller(context, self._verifier)
        chains = await self._app.get_option_chain(user_id, request.underlying_symbol)
        return pb.GetOptionChainResponse(chains=[convert.option_chain(c) for c in chains])

    async def GetMarketMetrics(
        self, request: pb.GetMarketMetricsRequest, context: Context
    ) -> pb.GetMarketMetricsResponse:
        """Beta, dividend yield and volatility metrics, and the risk-free rate."""
        user_id = await caller(context, self._verifier)
        metrics, rate = await self._app.get_market_metrics(user_id, list(request.symbols))
        return pb.GetMarketMetricsResponse(
            metrics=[convert.market_metrics(m) for m in metrics], risk_free_rate=float(rate)
        )

    async def DeleteBrokerLink(
        self, request: pb.DeleteBrokerLinkRequest, context: Context
    ) -> pb.DeleteBrokerLinkResponse:
        """Unlink: forget the credential and its accounts."""
        user_id = await caller(context, self._verifier)
        await self._app.delete_link(user_id, request.broker_link_id)
        return pb.DeleteBrokerLinkResponse()
