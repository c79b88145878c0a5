"""REDIS_URL's ways in, against private redis-servers: a password in the URL, and an
Entra ID token as the password of the identity's object id (Azure Cache for Redis)."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace
from typing import Any

import coredis
import pytest
from private_redis import private_redis

from pichat_trio.adapters.redis.client import EntraCredentials, describe, open_client


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


class FakeCredential:
    """An ``azure.identity`` credential: ``get_token(scope)``, counted."""

    def __init__(self, token: str, lifetime: float) -> None:
        self.token = token
        self.lifetime = lifetime
        self.scopes: list[str] = []

    def get_token(self, scope: str) -> Any:
        self.scopes.append(scope)
        return SimpleNamespace(token=self.token, expires_on=int(time.time() + self.lifetime))


async def test_a_password_in_the_url_opens_the_server() -> None:
    with private_redis("--requirepass", "s3cret") as server:
        good = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        async with open_client(good) as client:
            assert await client.ping() == b"PONG"
        assert "s3cret" not in describe(good)
        with pytest.raises(BaseExceptionGroup) as refused:  # from coredis' task group
            async with open_client(f"redis://:wrong@127.0.0.1:{server.port}/0") as client:
                await client.ping()
        assert refused.group_contains(coredis.exceptions.AuthenticationFailureError)


async def test_an_entra_token_is_the_password_of_its_object_id() -> None:
    token = _jwt({"oid": "0f0e0d0c-object-id"})
    user = ["--user", "0f0e0d0c-object-id", "on", f">{token}", "~*", "&*", "+@all"]
    with private_redis(*user, "--user", "default", "off") as server:
        credential = FakeCredential(token, lifetime=3600)
        url = f"redis://127.0.0.1:{server.port}/0"
        async with open_client(url, "entra", credential) as client:
            assert await client.ping() == b"PONG"
        assert credential.scopes == ["https://redis.azure.com/.default"]
        async with open_client(url) as anonymous:
            with pytest.raises(coredis.exceptions.RedisError):
                await anonymous.ping()


async def test_an_entra_token_is_fetched_again_only_near_its_expiry() -> None:
    lasting = FakeCredential(_jwt({"oid": "a"}), lifetime=3600)
    provider = EntraCredentials(credential=lasting)
    first = await provider.get_credentials()
    second = await provider.get_credentials()
    assert first == second and first.username == "a"
    assert len(lasting.scopes) == 1
    expiring = FakeCredential(_jwt({"oid": "b"}), lifetime=60)  # inside the 5-minute margin
    provider = EntraCredentials("named-in-the-url", expiring)
    assert (await provider.get_credentials()).username == "named-in-the-url"
    await provider.get_credentials()
    assert len(expiring.scopes) == 2


async def test_a_token_without_an_object_id_is_refused() -> None:
    provider = EntraCredentials(credential=FakeCredential("not-a-jwt", lifetime=3600))
    with pytest.raises(ValueError, match="oid"):
        await provider.get_credentials()
