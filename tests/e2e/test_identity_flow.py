"""Identity end to end on the embedded platform, through Envoy, as a user does it with curl and grpcurl."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from embedded_proc import EmbeddedPlatform, sign_up, tool

def _sign_up_and_log_in(platform: EmbeddedPlatform) -> dict:
    return sign_up(platform.rest_base)


@pytest.fixture(scope="module")
def alice(embedded: EmbeddedPlatform) -> dict:
    return _sign_up_and_log_in(embedded)


@pytest.fixture(scope="module")
def bob(embedded: EmbeddedPlatform) -> dict:
    return _sign_up_and_log_in(embedded)


def _auth(user: dict) -> dict[str, str]:
    return {"authorization": f"Bearer {user['access_token']}"}


def test_rest_call_with_the_token_returns_the_user(embedded: EmbeddedPlatform, alice: dict) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/users/{alice['user_id']}", headers=_auth(alice), timeout=10)
    assert response.status_code == 200
    assert response.json()["user"]["email"] == alice["email"]


def test_grpc_call_with_the_token_through_the_gateway_with_grpcurl(embedded: EmbeddedPlatform, alice: dict) -> None:
    result = subprocess.run(
        [
            tool("grpcurl"), "-plaintext", "-H", f"authorization: Bearer {alice['access_token']}",
            "-d", json.dumps({"user_id": alice["user_id"]}),
            "-protoset", _descriptor_set(), f"127.0.0.1:{embedded.gateway_port}", "tastyplat.user.v1.UserService/GetUser",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"]["email"] == alice["email"]


def _descriptor_set() -> str:
    from gateway.config import default_descriptor_set

    return str(default_descriptor_set())


def test_without_a_token_the_gateway_answers_401(embedded: EmbeddedPlatform, alice: dict) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/users/{alice['user_id']}", timeout=10)
    assert response.status_code == 401


def test_unknown_rest_path_with_a_token_is_404_not_a_503(embedded: EmbeddedPlatform, alice: dict) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/nope", headers=_auth(alice), timeout=10)
    assert response.status_code == 404


def test_one_user_cannot_read_another_users_profile_over_rest(embedded: EmbeddedPlatform, alice: dict, bob: dict) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/users/{bob['user_id']}", headers=_auth(alice), timeout=10)
    assert response.status_code in (403, 404)
    assert response.json()["details"][0]["reason"] in ("PERMISSION_DENIED", "USER_NOT_FOUND", "NOT_FOUND")


def test_refresh_rotates_and_reusing_the_old_token_revokes_the_family(embedded: EmbeddedPlatform) -> None:
    user = _sign_up_and_log_in(embedded)
    with httpx.Client(base_url=embedded.rest_base, timeout=30) as client:
        first = client.post("/v1/auth:refresh", json={"refresh_token": user["refresh_token"]})
        assert first.status_code == 200, first.text
        rotated = first.json()["tokens"]["refresh_token"]
        assert rotated != user["refresh_token"]
        reuse = client.post("/v1/auth:refresh", json={"refresh_token": user["refresh_token"]})
        assert reuse.status_code in (401, 400)
        after = client.post("/v1/auth:refresh", json={"refresh_token": rotated})
        assert after.status_code in (401, 400), "the whole family is revoked after reuse"
