"""Options per second through CalculatorService.ComputeGreeksBatch against core_ext called directly.

One run, the same random inputs for every competitor, interleaved rounds, medians:

* ``core_ext.greeks_array`` called directly on the 100,000-option arrays (the kernel alone);
* the batch RPC on 100,000-option batches to ``python -m services.calculator`` in its own process on this
  machine, from a NumPy client that writes the packed request columns from ``ndarray`` bytes and reads the
  response columns with ``numpy.frombuffer`` (``services.calculator.api.convert``), with 1 and 2 calls in
  flight; the client's encoding and decoding are inside the timing;
* the same RPC through the generated stub, building and reading the columns with the protobuf API
  (``extend(list)`` / ``numpy.array(field)``), as a naive client would.

The serialization (and transport) overhead is printed as the ratio of RPC time per option to kernel time per
option. With ``--pin`` (the default on a machine with two or more cores) the server runs on CPU 0 and the
client on CPU 1, as in the reference measurements. Run it with::

    .venv/bin/python benchmarks/calculator/bench_batch_rpc.py [--style american] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import core_ext
import grpc
import grpc.aio
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.calculator.api import convert
from services.calculator.domain.model import GREEKS_OUTPUTS, GreeksBatchResult
from services.platform.peers import channel_options
from tastyplat.calculator.v1 import calculator_service_pb2 as pb
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as pb_grpc
from tastyplat.type.v1 import option_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 100_000
TARGET = 5_000_000  # options per second through the batch RPC (issue 4)
METHOD = "/tastyplat.calculator.v1.CalculatorService/ComputeGreeksBatch"
STYLES = {"european": option_pb2.EXERCISE_STYLE_EUROPEAN, "american": option_pb2.EXERCISE_STYLE_AMERICAN}


def inputs(n: int, seed: int = 20240611) -> dict[str, np.ndarray]:
    """The reference input distribution (performance.md): S, K ~ U[50, 150], whole days >= 4, etc."""
    rng = np.random.default_rng(seed)
    days = np.maximum(np.round(rng.uniform(0.01, 2.0, n) * 365.0), 4.0)
    is_call = np.zeros(n, dtype=np.bool_)
    is_call[: n // 2] = True
    rng.shuffle(is_call)
    return {
        "is_call": is_call,
        "spot_prices": rng.uniform(50.0, 150.0, n),
        "strike_prices": rng.uniform(50.0, 150.0, n),
        "expiry_years": days / 365.0,
        "volatilities": rng.uniform(0.05, 1.0, n),
        "rates": rng.uniform(0.0, 0.05, n),
        "dividend_yields": rng.uniform(0.0, 0.03, n),
    }


def encode(cols: dict[str, np.ndarray], style: int) -> bytes:
    """The NumPy client's request: packed columns written from the arrays' bytes."""
    return convert.greeks_batch_request_to_wire(
        is_call=cols["is_call"], spot_prices=cols["spot_prices"], strike_prices=cols["strike_prices"],
        expiry_years=cols["expiry_years"], volatilities=cols["volatilities"], rates=cols["rates"],
        dividend_yields=cols["dividend_yields"], style=style,
    )


def as_result(out: Any) -> GreeksBatchResult:
    """A GreeksBatchResult holding what greeks_array returned."""
    return GreeksBatchResult(**{name: getattr(out, name) for name in GREEKS_OUTPUTS},
                             status=np.asarray(out.status, dtype=np.uint8))


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, grpcio {grpc.__version__}, numpy {np.__version__}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CALCULATOR_HOST": "127.0.0.1", "CALCULATOR_PORT": str(port),
           "CALCULATOR_DRAIN_SECONDS": "0", "CALCULATOR_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "services.calculator"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30.0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return process
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not become SERVING")


def time_direct(cols: dict[str, np.ndarray], style: str, repeats: int) -> float:
    """Seconds per 100,000-option greeks_array call (best of ``repeats`` in this round)."""
    args = list(cols.values())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        core_ext.greeks_array(*args, style=style)
        best = min(best, time.perf_counter() - t0)
    return best


async def time_calls(call: Callable[[], Awaitable[Any]], calls: int, in_flight: int) -> float:
    """Seconds per call with ``in_flight`` calls kept outstanding (wall time / calls)."""
    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    share = calls // in_flight
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(share) for _ in range(in_flight)))
    return (time.perf_counter() - t0) / (share * in_flight)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cols = inputs(N)
    style_code = STYLES[args.style]
    pin = args.pin and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    port = free_port()
    server = start_server(port, 0 if pin else None)
    if pin:
        os.sched_setaffinity(0, {1})
    try:
        options = [*channel_options(), ("grpc.http2.max_frame_size", args.max_frame_size)] \
            if args.max_frame_size else channel_options()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
        raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        stub = pb_grpc.CalculatorServiceStub(channel)
        direct = core_ext.greeks_array(*cols.values(), style=args.style)

        async def numpy_call() -> dict[str, np.ndarray]:
            data = encode(cols, style_code)
            return convert.greeks_batch_response_from_wire(await raw(data))

        lists = {name: values.tolist() for name, values in cols.items()}

        async def stub_call() -> np.ndarray:
            request = pb.ComputeGreeksBatchRequest(style=style_code)
            for name, values in lists.items():
                getattr(request, name).extend(values)
            response = await stub.ComputeGreeksBatch(request)
            return np.array([np.array(getattr(response, f)) for f in ("prices", "deltas", "gammas", "vegas",
                                                                       "thetas", "rhos", "vannas", "charms")])

        # Correctness first: the RPC returns what the kernel returns, bit for bit.
        out = await numpy_call()
        for name, column in convert.GREEKS_BATCH_RESPONSE_COLUMNS.items():
            if not np.array_equal(out[column], getattr(direct, name), equal_nan=True):
                raise SystemExit(f"RPC {column} differ from core_ext's")
        for _ in range(2):
            await numpy_call()
        await stub_call()

        rows: dict[str, list[float]] = {"direct": [], "rpc1": [], "rpc2": [], "stub": []}
        for _ in range(args.rounds):
            rows["direct"].append(time_direct(cols, args.style, 5))
            rows["rpc1"].append(await time_calls(numpy_call, args.calls, 1))
            rows["rpc2"].append(await time_calls(numpy_call, args.calls, 2))
            rows["stub"].append(await time_calls(stub_call, 2, 1))
        await channel.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    return {name: statistics.median(values) for name, values in rows.items()} | {
        "ratios": {name: statistics.median(r / d for r, d in zip(values, rows["direct"], strict=True))
                   for name, values in rows.items() if name != "direct"},
        "pinned": pin,
    }


def client_side_costs(style: str) -> dict[str, float]:
    """Per-call client costs of the NumPy path, measured in this process (no network)."""
    cols = inputs(N)
    result = as_result(core_ext.greeks_array(*cols.values(), style=style))
    response = convert.greeks_batch_result_to_wire(result)

    def best(f: Callable[[], Any], k: int = 20) -> float:
        values = []
        for _ in range(k):
            t0 = time.perf_counter()
            f()
            values.append(time.perf_counter() - t0)
        return min(values)

    request = encode(cols, STYLES[style])
    return {
        "encode request": best(lambda: encode(cols, STYLES[style])),
        "server: parse request": best(lambda: convert.greeks_batch_from_wire(request)),
        "server: encode response": best(lambda: convert.greeks_batch_result_to_wire(result)),
        "decode response": best(lambda: convert.greeks_batch_response_from_wire(response)),
        "request bytes": float(len(request)),
        "response bytes": float(len(response)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", choices=sorted(STYLES), default="european")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=12, help="RPCs per round and concurrency level")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server/client to CPUs")
    parser.add_argument("--max-frame-size", type=int, default=0,
                        help="client HTTP/2 max frame size to advertise (0: gRPC's default)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    costs = client_side_costs(args.style)
    figures = asyncio.run(run(args))
    per = {name: figures[name] / N for name in ("direct", "rpc1", "rpc2", "stub")}
    print(f"machine: {machine()}")
    print(f"batch: {N:,} options, style {args.style}, {args.rounds} rounds (medians), "
          f"server and client {'pinned to CPU 0 / CPU 1' if figures['pinned'] else 'unpinned'}")
    print()
    print(f"{'path':58s} {'ms/batch':>9s} {'ns/option':>10s} {'options/s':>12s} {'x kernel':>9s}")
    labels = {
        "direct": "core_ext.greeks_array, called directly",
        "rpc1": "ComputeGreeksBatch RPC, NumPy client, 1 in flight",
        "rpc2": "ComputeGreeksBatch RPC, NumPy client, 2 in flight",
        "stub": "ComputeGreeksBatch RPC, protobuf-API client (extend/list)",
    }
    for name, label in labels.items():
        ratio = 1.0 if name == "direct" else figures["ratios"][name]
        print(f"{label:58s} {figures[name] * 1e3:9.2f} {per[name] * 1e9:10.1f} {1.0 / per[name]:12,.0f} "
              f"{ratio:9.1f}")
    print()
    print("serialization + transport overhead (RPC time per option / kernel time per option, same rounds): "
          f"{figures['ratios']['rpc1']:.1f}x at 1 in flight, {figures['ratios']['rpc2']:.1f}x at 2 in flight")
    print("client/server codec costs per 100,000-option batch (best of 20, in process):")
    for name, value in costs.items():
        shown = f"{value / 1e6:.2f} MB" if name.endswith("bytes") else f"{value * 1e3:.3f} ms"
        print(f"  {name:28s} {shown}")
    best = max(1.0 / per["rpc1"], 1.0 / per["rpc2"])
    verdict = "meets" if best >= TARGET else "MISSES"
    print(f"\nbest RPC throughput {best:,.0f} options/s {verdict} the target of {TARGET:,} options/s")
    if args.json:
        print(json.dumps({"machine": machine(), "style": args.style, **figures, "codec": costs}, indent=2))


if __name__ == "__main__":
    main()
