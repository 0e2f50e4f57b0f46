"""Helpers shared by the user service tests."""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio
from tastyplat.user.v1 import user_service_pb2_grpc as pb_grpc

from services.user.wiring import UserComponents

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "admin passphrase for tests"


@dataclass
class Running:
    components: UserComponents
    stub: pb_grpc.UserServiceStub
    channel: grpc.aio.Channel
    address: str
