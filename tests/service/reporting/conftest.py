"""A real reporting server on port 0 over in-memory peers, with JWT auth and a report archive in a temp dir."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc.aio
import pytest
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as pb_grpc

from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server
from services.reporting.adapters.archive import FileArchive
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.reporting.adapters.memory_peers import MemorySources
from services.reporting.app import ReportingSettings
from services.reporting.wiring import Assembly, assemble
from tests.fakes.access_tokens import TokenIssuer
from tests.unit.reporting.reporting_data import sample_account

ACCOUNT = "5WW00001"


@dataclass
class ReportingRig:
    """The running service and its seams."""

    stub: pb_grpc.ReportingServiceStub
    tokens: TokenIssuer
    sources: MemorySources
    archive: FileArchive
    assembly: Assembly

    def auth(self, user_id: str = "alice") -> tuple[tuple[str, str], ...]:
        """Call metadata of ``user_id``."""
        return self.tokens.metadata(user_id)


@pytest.fixture
async def rig(tmp_path: pathlib.Path) -> AsyncIterator[ReportingRig]:
    """The service with the sample account 5WW00001 of alice."""
    tokens = TokenIssuer()
    clock = SystemClock()
    sources = MemorySources()
    sources.accounts[ACCOUNT] = sample_account("alice")
    archive = FileArchive(tmp_path / "reports")
    assembly = assemble(
        portfolio=sources,
        broker=sources,
        alerts=sources,
        archive=archive,
        clock=clock,
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        settings=ReportingSettings(reports_per_user=1),
    )
    # The contract puts the file name in the initial metadata, so the server must not send its own first.
    async with running_server([assembly.registration], request_id_in_initial_metadata=False) as server:
        channel: grpc.aio.Channel = client_channel(server)
        try:
            yield ReportingRig(pb_grpc.ReportingServiceStub(channel), tokens, sources, archive, assembly)
        finally:
            await channel.close()
