"""DXLink quote tokens from the Tastytrade Open API: OAuth refresh-token grant, then `GET /api-quote-tokens`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from services.marketdata.domain.errors import FeedNotAuthorized, FeedUnavailable
from services.marketdata.ports import QuoteToken
from services.platform.clock import Clock

__all__ = ["TastytradeQuoteTokens"]

USER_AGENT = "tastyplat-marketdata/0.1"
# Tastytrade documents quote tokens as valid for 24 hours when a response has no expires-at.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=24)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    if isinstance(error, str):  # RFC 6749 shape
        return f"{error}: {body.get('error_description', '')}"
    return str(body)[:200]


class TastytradeQuoteTokens:
    """A `QuoteTokenSource` that logs in with a refresh token and asks for an API quote token each time."""

    def __init__(
        self,
        *,
        base_url: str,
        client_secret: str,
        refresh_token: str,
        clock: Clock,
        client_id: str | None = None,
        api_version: str | None = "20251101",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_version:
            headers["Accept-Version"] = api_version
        self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"TastytradeQuoteTokens(base_url={str(self._client.base_url)!r}, secrets=<redacted>)"

    async def _access_token(self) -> str:
        body: dict[str, Any] = {
            "grant_type": "refresh_token",
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        if self._client_id:
            body["client_id"] = self._client_id
        response = await self._post("/oauth/token", body)
        token = response.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise FeedNotAuthorized("Tastytrade answered the token request without an access_token")
        return token

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as error:
            raise FeedUnavailable(f"Tastytrade cannot be reached: {error!r}", retry_after=5.0) from error
        self._check(response)
        return response

    def _check(self, response: httpx.Response) -> None:
        if response.status_code in (400, 401, 403):
            raise FeedNotAuthorized(f"Tastytrade refused the credentials: {_error_text(response)}")
        if response.status_code >= 300:
            raise FeedUnavailable(
                f"Tastytrade answered {response.status_code}: {_error_text(response)}", retry_after=5.0
            )

    async def fetch(self) -> QuoteToken:
        """Log in and fetch a quote token.

        Raises:
            FeedNotAuthorized: the credentials were refused.
            FeedUnavailable: Tastytrade could not be reached or failed.
        """
        access = await self._access_token()
        try:
            response = await self._client.get("/api-quote-tokens", headers={"Authorization": f"Bearer {access}"})
        except httpx.HTTPError as error:
            raise FeedUnavailable(f"Tastytrade cannot be reached: {error!r}", retry_after=5.0) from error
        self._check(response)
        data = response.json().get("data") or {}
        token, url = data.get("token"), data.get("dxlink-url")
        if not isinstance(token, str) or not isinstance(url, str):
            raise FeedUnavailable("Tastytrade's /api-quote-tokens answer has no token or dxlink-url")
        expires_at: datetime | None
        raw_expiry = data.get("expires-at")
        try:
            expires_at = datetime.fromisoformat(raw_expiry) if isinstance(raw_expiry, str) else None
        except ValueError:
            expires_at = None
        if expires_at is None:
            expires_at = self._clock.now() + DEFAULT_TOKEN_LIFETIME
        return QuoteToken(token, url, expires_at)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
