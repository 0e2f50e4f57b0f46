"""RPCs per second per service core, measured on the distributed topology (one process per service).

Starts ``python -m services.distributed`` (the machine's PostgreSQL, Redis and RabbitMQ; Envoy in front; peer
authentication on), signs a user up, then drives one representative read RPC of each service straight at the
service's own port with the user's token (the service verifies it itself), with ``--concurrency`` calls in
flight for ``--seconds``. For each RPC it prints:

- ``rps``: completed calls per wall-clock second;
- ``cpu_ms_per_call``: CPU time (user + system, all threads, from /proc) of every platform process during the
  window, less what it burns idle (measured for 3 s before the runs), divided by the calls: the called service's own, and the peers' it fans out to (portfolio reads the
  broker and market data; reporting the broker);
- ``per_core``: calls per CPU-second of the called service's process, i.e. what one fully used core of that
  service serves. This is the figure the capacity model in the README scales; unlike ``rps`` it does not depend
  on whether the load generator (same machine, same cores) saturated the service.

    PYTHONPATH=.:tests/e2e .venv/bin/python benchmarks/platform/bench_rpc_per_core.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "e2e"))

from distributed_proc import cleanup, start_distributed  # noqa: E402
from embedded_proc import sign_up  # noqa: E402
from tastyplat.broker.v1 import broker_service_pb2 as broker_pb  # noqa: E402
from tastyplat.broker.v1 import broker_service_pb2_grpc as broker_grpc  # noqa: E402
from tastyplat.calculator.v1 import calculator_service_pb2 as calc_pb  # noqa: E402
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as calc_grpc  # noqa: E402
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as dm_pb  # noqa: E402
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as dm_grpc  # noqa: E402
from tastyplat.marketdata.v1 import marketdata_service_pb2 as md_pb  # noqa: E402
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as md_grpc  # noqa: E402
from tastyplat.notification.v1 import notification_service_pb2 as nt_pb  # noqa: E402
from tastyplat.notification.v1 import notification_service_pb2_grpc as nt_grpc  # noqa: E402
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pf_pb  # noqa: E402
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pf_grpc  # noqa: E402
from tastyplat.reporting.v1 import reporting_service_pb2 as rp_pb  # noqa: E402
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as rp_grpc  # noqa: E402
from tastyplat.type.v1 import option_pb2  # noqa: E402
from tastyplat.user.v1 import user_service_pb2 as user_pb  # noqa: E402
from tastyplat.user.v1 import user_service_pb2_grpc as user_grpc  # noqa: E402

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    """One representative RPC of a service: the stub's method and how to build its request."""

    service: str
    rpc: str
    call: Callable[[grpc.aio.Channel], Any]
    request: Callable[[str], Any]


CASES = [
    Case("user", "GetUser", lambda ch: user_grpc.UserServiceStub(ch).GetUser,
         lambda account: user_pb.GetUserRequest(user_id="me")),
    Case("broker", "ListPositions", lambda ch: broker_grpc.BrokerServiceStub(ch).ListPositions,
         lambda account: broker_pb.ListPositionsRequest(account_number=account)),
    Case("marketdata", "GetQuote", lambda ch: md_grpc.MarketDataServiceStub(ch).GetQuote,
         lambda account: md_pb.GetQuoteRequest(symbol="SPY")),
    Case("calculator", "ComputeGreeks", lambda ch: calc_grpc.CalculatorServiceStub(ch).ComputeGreeks,
         lambda account: calc_pb.ComputeGreeksRequest(
             kind=option_pb2.OPTION_KIND_CALL, spot_price=42, strike_price=40, expiry_years=0.5, volatility=0.2,
             rate=0.1, style=option_pb2.EXERCISE_STYLE_AMERICAN)),
    Case("deltamonitor", "ListWatches", lambda ch: dm_grpc.DeltaMonitorServiceStub(ch).ListWatches,
         lambda account: dm_pb.ListWatchesRequest(page_size=50)),
    Case("notification", "ListChannels", lambda ch: nt_grpc.NotificationServiceStub(ch).ListChannels,
         lambda account: nt_pb.ListChannelsRequest(page_size=50)),
    Case("portfolio", "GetPortfolioGreeks", lambda ch: pf_grpc.PortfolioServiceStub(ch).GetPortfolioGreeks,
         lambda account: pf_pb.GetPortfolioGreeksRequest(account_number=account)),
    Case("reporting", "AnalyzeTransactions", lambda ch: rp_grpc.ReportingServiceStub(ch).AnalyzeTransactions,
         lambda account: rp_pb.AnalyzeTransactionsRequest(account_number=account)),
]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _idle_rates(pids: dict[str, int], seconds: float = 3.0) -> dict[str, float]:
    """CPU each process burns with no calls (the market data simulator, heartbeats, lease renewals)."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (_cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


async def _drive(target: str, case: Case, token: str, account: str, seconds: float, concurrency: int,
                 pids: dict[str, int], idle: dict[str, float]) -> dict[str, Any]:
    metadata = (("authorization", f"Bearer {token}"),)
    request = case.request(account)
    async with grpc.aio.insecure_channel(target) as channel:
        method = case.call(channel)
        await method(request, metadata=metadata, timeout=30)  # warm-up, and proof the call succeeds
        for _ in range(200):
            await method(request, metadata=metadata, timeout=30)
        done = 0
        errors: dict[str, int] = {}
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                try:
                    await method(request, metadata=metadata, timeout=30)
                    done += 1
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] = errors.get(error.code().name, 0) + 1

        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu = {name: max(0.0, _cpu_seconds(pid) - cpu_before[name] - idle[name] * wall) for name, pid in pids.items()}
    own = cpu[case.service]
    busy = {name: round(1000 * used / max(done, 1), 3) for name, used in cpu.items() if used / wall > 0.02}
    return {
        "service": case.service,
        "rpc": case.rpc,
        "calls": done,
        "errors": errors,
        "rps": round(done / wall),
        "service_cpu_utilisation": round(own / wall, 2),
        "per_core": round(done / own) if own > 0 else None,
        "cpu_ms_per_call": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", nargs="*", default=None, help="service names")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as run_dir:
        platform = start_distributed(pathlib.Path(run_dir))
        try:
            pids = {row["service"]: row["pid"] for row in platform.process_table()}
            user = sign_up(platform.rest_base, prefix="bench", with_account=True)
            token, account = user["access_token"], user["account"]
            idle = _idle_rates(pids)
            results = []
            for case in CASES:
                if args.only and case.service not in args.only:
                    continue
                result = asyncio.run(_drive(platform.target(case.service), case, token, account, args.seconds,
                                            args.concurrency, pids, idle))
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            platform.stop()
            cleanup(platform.run_id, platform.vhost)
    print(f"\n{'service':<13} {'rpc':<21} {'rps':>7} {'svc cpu':>8} {'per core':>9}  cpu ms per call (by process)")
    for r in results:
        print(f"{r['service']:<13} {r['rpc']:<21} {r['rps']:>7} {r['service_cpu_utilisation']:>8} "
              f"{r['per_core'] or '-':>9}  {r['cpu_ms_per_call']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": os.uname().machine, "cpus": os.cpu_count(), "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
