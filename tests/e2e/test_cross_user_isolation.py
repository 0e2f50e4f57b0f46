"""One user never sees another user's data: every RPC that touches user data, over REST and over gRPC, through
the gateway of `make run`'s platform, answers NOT_FOUND (404) for someone else's account, watch or profile,
exactly as for one that does not exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import httpx
import pytest
from embedded_proc import EmbeddedPlatform, sign_up

from tastyplat.broker.v1 import broker_service_pb2 as broker_pb
from tastyplat.broker.v1 import broker_service_pb2_grpc as broker_grpc
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as dm_pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as dm_grpc
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pf_pb
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pf_grpc
from tastyplat.reporting.v1 import reporting_service_pb2 as rp_pb
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as rp_grpc
from tastyplat.user.v1 import user_service_pb2 as user_pb
from tastyplat.user.v1 import user_service_pb2_grpc as user_grpc

PASSWORD = f"Iso-{uuid.uuid4().hex}"


def _user(platform: EmbeddedPlatform) -> dict[str, str]:
    user = sign_up(platform.rest_base, prefix="iso", password=PASSWORD, with_account=True)
    headers, account = user["headers"], user["account"]
    with httpx.Client(base_url=platform.rest_base, timeout=60) as client:
        watch = {"account_number": account, "display_name": "book", "account": {},
                 "metric": "DELTA_METRIC_DOLLARS", "static_band": {"lower": -1e9, "upper": 1e9}}
        created = client.post("/v1/watches", json={"watch": watch}, headers=headers)
        assert created.status_code == 200, created.text
    return {
        "user_id": user["user_id"],
        "token": user["access_token"],
        "account": account,
        "watch_id": created.json()["watch"]["watch_id"],
    }


@pytest.fixture(scope="module")
def alice(embedded: EmbeddedPlatform) -> dict[str, str]:
    return _user(embedded)


@pytest.fixture(scope="module")
def bob(embedded: EmbeddedPlatform) -> dict[str, str]:
    return _user(embedded)


REST_CALLS: dict[str, Callable[[dict[str, str]], tuple[str, str, dict | None]]] = {
    "GetUser": lambda b: ("GET", f"/v1/users/{b['user_id']}", None),
    "GetBalances": lambda b: ("GET", f"/v1/accounts/{b['account']}/balances", None),
    "ListPositions": lambda b: ("GET", f"/v1/accounts/{b['account']}/positions", None),
    "ListTransactions": lambda b: ("GET", f"/v1/accounts/{b['account']}/transactions", None),
    "GetPortfolio": lambda b: ("GET", f"/v1/portfolios/{b['account']}", None),
    "GetPortfolioGreeks": lambda b: ("GET", f"/v1/portfolios/{b['account']}/greeks", None),
    "GetProfitAndLoss": lambda b: ("GET", f"/v1/portfolios/{b['account']}/pnl", None),
    "GetRiskLimits": lambda b: ("GET", f"/v1/portfolios/{b['account']}/riskLimits", None),
    "RunScenario": lambda b: ("POST", f"/v1/portfolios/{b['account']}:runScenario", {}),
    "AnalyzeTransactions": lambda b: ("POST", f"/v1/accounts/{b['account']}/transactions:analyze", {}),
    "CreateReport": lambda b: ("POST", "/v1/reports", {"account_number": b["account"], "format": "REPORT_FORMAT_CSV", "sections": ["REPORT_SECTION_TRANSACTIONS"]}),
    "GetWatch": lambda b: ("GET", f"/v1/watches/{b['watch_id']}", None),
    "DeleteWatch": lambda b: ("DELETE", f"/v1/watches/{b['watch_id']}", None),
    "CreateWatch": lambda b: (
        "POST", "/v1/watches",
        {"watch": {"account_number": b["account"], "display_name": "theirs", "account": {},
                   "metric": "DELTA_METRIC_DOLLARS", "static_band": {"lower": -1.0, "upper": 1.0}}},
    ),
}


@pytest.mark.parametrize("rpc", sorted(REST_CALLS))
def test_rest_on_another_users_data_is_404(embedded: EmbeddedPlatform, alice: dict, bob: dict, rpc: str) -> None:
    method, path, body = REST_CALLS[rpc](bob)
    response = httpx.request(
        method, f"{embedded.rest_base}{path}", json=body, timeout=60,
        headers={"authorization": f"Bearer {alice['token']}"},
    )
    assert response.status_code == 404, f"{rpc}: {response.status_code} {response.text[:300]}"
    assert response.json()["details"][0]["reason"].endswith("NOT_FOUND")


def test_the_same_calls_on_ones_own_data_succeed(embedded: EmbeddedPlatform, alice: dict) -> None:
    # So the 404s above are about ownership, not about broken routes.
    for rpc in ("GetUser", "GetBalances", "ListPositions", "GetPortfolioGreeks", "GetWatch"):
        method, path, body = REST_CALLS[rpc](alice)
        response = httpx.request(
            method, f"{embedded.rest_base}{path}", json=body, timeout=60,
            headers={"authorization": f"Bearer {alice['token']}"},
        )
        assert response.status_code == 200, f"{rpc}: {response.text[:300]}"


def test_listing_watches_shows_only_ones_own(embedded: EmbeddedPlatform, alice: dict, bob: dict) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/watches", headers={"authorization": f"Bearer {alice['token']}"}, timeout=60)
    ids = {w["watch_id"] for w in response.json()["watches"]}
    assert alice["watch_id"] in ids and bob["watch_id"] not in ids


async def test_grpc_on_another_users_data_is_not_found(embedded: EmbeddedPlatform, alice: dict, bob: dict) -> None:
    metadata = (("authorization", f"Bearer {alice['token']}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.gateway_port}") as channel:
        calls = {
            "GetUser": user_grpc.UserServiceStub(channel).GetUser(user_pb.GetUserRequest(user_id=bob["user_id"]), metadata=metadata, timeout=30),
            "GetBalances": broker_grpc.BrokerServiceStub(channel).GetBalances(
                broker_pb.GetBalancesRequest(account_number=bob["account"]), metadata=metadata, timeout=30),
            "GetPortfolioGreeks": pf_grpc.PortfolioServiceStub(channel).GetPortfolioGreeks(
                pf_pb.GetPortfolioGreeksRequest(account_number=bob["account"]), metadata=metadata, timeout=30),
            "AnalyzeTransactions": rp_grpc.ReportingServiceStub(channel).AnalyzeTransactions(
                rp_pb.AnalyzeTransactionsRequest(account_number=bob["account"]), metadata=metadata, timeout=30),
            "GetWatch": dm_grpc.DeltaMonitorServiceStub(channel).GetWatch(
                dm_pb.GetWatchRequest(watch_id=bob["watch_id"]), metadata=metadata, timeout=30),
        }
        codes = {}
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            codes[name] = caught.value.code()
    assert codes == {name: grpc.StatusCode.NOT_FOUND for name in calls}
