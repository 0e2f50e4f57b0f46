"""`make run`'s platform through Envoy's REST: a real user's token reaches the delta monitor and the notification
service, which verify it against the user service's JWKS and read the paper account from the broker."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from embedded_proc import EmbeddedPlatform, start_embedded

pytestmark = pytest.mark.e2e

PASSWORD = f"Dm-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    running = start_embedded(pathlib.Path(tmp_path_factory.mktemp("dm_embedded")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def trader(platform: EmbeddedPlatform) -> dict[str, str]:
    email = f"dm-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=platform.rest_base, timeout=30) as client:
        assert client.post("/v1/users", json={"email": email, "password": PASSWORD}).status_code == 200
        login = client.post("/v1/auth:login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"authorization": f"Bearer {login.json()['tokens']['access_token']}"}


def test_watch_on_the_paper_account_through_rest(platform: EmbeddedPlatform, trader: dict[str, str]) -> None:
    with httpx.Client(base_url=platform.rest_base, timeout=30, headers=trader) as client:
        accounts = client.get("/v1/accounts").json()["accounts"]
        account = accounts[0]["account_number"]
        watch = {"account_number": account, "display_name": "whole book", "account": {},
                 "metric": "DELTA_METRIC_DOLLARS", "static_band": {"lower": -1e9, "upper": 1e9}}
        created = client.post("/v1/watches", json={"watch": watch})
        assert created.status_code == 200, created.text
        listed = client.get("/v1/watches").json()
        assert [w["watch_id"] for w in listed["watches"]] == [created.json()["watch"]["watch_id"]]
        assert client.get("/v1/alerts").status_code == 200


def test_bad_watch_is_a_400_with_the_field_named(platform: EmbeddedPlatform, trader: dict[str, str]) -> None:
    with httpx.Client(base_url=platform.rest_base, timeout=30, headers=trader) as client:
        response = client.post("/v1/watches", json={"watch": {"account_number": "X", "account": {}}})
    assert response.status_code == 400
    assert "watch.metric" in response.text


def test_without_a_token_the_services_answer_401(platform: EmbeddedPlatform) -> None:
    assert httpx.get(f"{platform.rest_base}/v1/watches", timeout=30).status_code == 401
    assert httpx.get(f"{platform.rest_base}/v1/channels", timeout=30).status_code == 401


def test_notification_lists_channels(platform: EmbeddedPlatform, trader: dict[str, str]) -> None:
    response = httpx.get(f"{platform.rest_base}/v1/channels", headers=trader, timeout=30)
    assert response.status_code == 200, response.text
