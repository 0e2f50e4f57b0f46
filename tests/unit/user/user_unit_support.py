"""Helpers shared by the user service's unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from services.user.app import TokenGrant
from services.user.domain.model import Identity, Role
from services.user.wiring import UserComponents

PASSWORD = "Tr0ub4dor&3-horse-staple"


@dataclass
class Session:
    user_id: str
    grant: TokenGrant
    identity: Identity


async def sign_up(service: UserComponents, email: str, *, admin: bool = False) -> Session:
    """Create a user (optionally promoted to admin), log in, and return the verified session."""
    app = service.app
    view = await app.create_user(email=email, password=PASSWORD)
    if admin:
        await app.update_roles_unchecked(view.user, frozenset({Role.ADMIN, Role.TRADER}))
    grant = await app.login(email=email, password=PASSWORD, client_address="192.0.2.10")
    return Session(view.user.user_id, grant, await app.authenticate(grant.access_token))
