"""Server streams through Envoy: REST (NDJSON) and grpc-web, a finished stream told apart from a cut one."""

from __future__ import annotations

import asyncio
import json
import pathlib
import struct
from collections.abc import AsyncIterator, Callable

import grpc
import httpx
import pytest
from embedded_proc import free_port

from gateway.config import GatewaySettings, default_descriptor_set, write_config
from gateway.envoy import EnvoyProcess, validate
from services.platform.catalogue import entry
from services.platform.errors import Unavailable
from services.platform.server import ServiceRegistration
from services.platform.testing import running_server
from tastyplat.marketdata.v1 import marketdata_service_pb2 as md_pb2
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as md_grpc
from tastyplat.type.v1 import stream_pb2


class ScriptedMarketData(md_grpc.MarketDataServiceServicer):
    """Symbol "OK" streams three batches then StreamEnd; "CUT" streams two then fails with UNAVAILABLE."""

    async def StreamQuotes(self, request, context):  # noqa: N802 - generated name
        for i in range(3 if request.symbols == ["OK"] else 2):
            yield md_pb2.StreamQuotesResponse(
                quotes=md_pb2.QuoteBatch(symbols=[request.symbols[0]], bid_prices=[100.0 + i], ask_prices=[100.1 + i])
            )
        if request.symbols != ["OK"]:
            raise Unavailable("the quote feed dropped", reason="FEED_UNAVAILABLE")
        yield md_pb2.StreamQuotesResponse(end=stream_pb2.StreamEnd(reason=stream_pb2.STREAM_END_REASON_COMPLETED))


@pytest.fixture
async def gateway(tmp_path: pathlib.Path) -> AsyncIterator[GatewaySettings]:
    marketdata = entry("marketdata")
    registration = ServiceRegistration(
        md_grpc.add_MarketDataServiceServicer_to_server, ScriptedMarketData(), marketdata.full_name
    )
    async with running_server([registration]) as server:
        settings = GatewaySettings(
            descriptor_set=default_descriptor_set(),
            upstream_port=server.port,
            http_port=free_port(),
            admin_port=free_port(),
            access_log_path=str(tmp_path / "access.log"),
        )
        config = write_config(settings, tmp_path / "envoy.json")
        validate(config)
        envoy = EnvoyProcess(config, settings.admin_port, log_path=tmp_path / "envoy.log")
        await envoy.start()
        try:
            yield settings
        finally:
            await envoy.stop(drain_seconds=0)


async def _ndjson(settings: GatewaySettings, symbol: str, *, http2: bool) -> tuple[httpx.Response, list[dict]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", http2=http2, timeout=10) as client:
        response = await client.get("/v1/quotes:stream", params={"symbols": symbol})
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return response, lines


async def test_rest_stream_arrives_as_ndjson_ending_with_stream_end(gateway: GatewaySettings) -> None:
    response, lines = await _ndjson(gateway, "OK", http2=False)
    assert response.status_code == 200
    assert [line["quotes"]["bid_prices"] for line in lines[:3]] == [[100.0], [101.0], [102.0]]
    assert lines[-1] == {"end": {"reason": "STREAM_END_REASON_COMPLETED", "message": ""}}


async def test_rest_stream_cut_short_has_no_stream_end_so_the_client_sees_failure(gateway: GatewaySettings) -> None:
    response, lines = await _ndjson(gateway, "CUT", http2=False)
    assert all("end" not in line for line in lines)
    assert sum("quotes" in line for line in lines) == 2


async def test_rest_stream_failure_shows_in_the_grpc_status_trailer_over_http2(gateway: GatewaySettings) -> None:
    # curl-like HTTP/2 clients can read trailers; httpx does not expose them, so ask Envoy's access log instead.
    response, _ = await _ndjson(gateway, "CUT", http2=True)
    assert response.status_code == 200
    entries = await _access_log(gateway, lambda e: e["path"].startswith("/v1/quotes:stream"))
    assert entries[-1]["grpc_status"] == 14  # UNAVAILABLE


async def _access_log(settings: GatewaySettings, wanted: Callable[[dict], bool]) -> list[dict]:
    # Envoy flushes access logs about once a second.
    for _ in range(50):
        path = pathlib.Path(settings.access_log_path)
        entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if matching := [e for e in entries if wanted(e)]:
            return matching
        await asyncio.sleep(0.1)
    raise AssertionError("no matching access log line within 5 s")


def _grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames, offset = [], 0
    while offset < len(body):
        flag, length = struct.unpack(">BI", body[offset : offset + 5])
        frames.append((flag, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return frames


async def test_grpc_web_stream_carries_messages_and_an_ok_trailer(gateway: GatewaySettings) -> None:
    request = md_pb2.StreamQuotesRequest(symbols=["OK"]).SerializeToString()
    body = struct.pack(">BI", 0, len(request)) + request
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{gateway.http_port}/tastyplat.marketdata.v1.MarketDataService/StreamQuotes",
            content=body,
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
    frames = _grpc_web_frames(response.content)
    messages = [md_pb2.StreamQuotesResponse.FromString(data) for flag, data in frames if flag == 0]
    trailers = b"".join(data for flag, data in frames if flag == 0x80).decode()
    assert [m.WhichOneof("event") for m in messages] == ["quotes", "quotes", "quotes", "end"]
    assert "grpc-status:0" in trailers.replace(" ", "")


async def test_native_grpc_stream_failure_arrives_with_its_code_and_reason(gateway: GatewaySettings) -> None:
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.http_port}") as channel:
        call = md_grpc.MarketDataServiceStub(channel).StreamQuotes(md_pb2.StreamQuotesRequest(symbols=["CUT"]), timeout=10)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for message in call:
                received.append(message)
        status = await rpc_status.aio.from_call(call)
    assert len(received) == 2
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert info.reason == "FEED_UNAVAILABLE"


async def test_access_log_is_json_with_the_request_id(gateway: GatewaySettings) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        await client.get(f"http://127.0.0.1:{gateway.http_port}/v1/quotes:stream?symbols=OK", headers={"x-request-id": "log-me-1"})
    (entry_,) = await _access_log(gateway, lambda e: e["request_id"] == "log-me-1")
    assert entry_["status"] == 200
