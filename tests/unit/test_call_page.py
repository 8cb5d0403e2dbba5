"""`livedub serve`: the page, its script and the JS client are served; tokens are signed for valid
names only, with the server's key, and never for the bot's own identity."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.errors import ConfigError
from workers.live.page import CLIENT, create_app
from workers.settings import load_settings

SECRET = "s" * 32


def _settings():
    return load_settings(livekit={"api_key": "k", "api_secret": SECRET, "url": "ws://127.0.0.1:7880"})


async def _get_all(app, *paths: str) -> list[tuple[int, str, str]]:
    async with TestClient(TestServer(app)) as client:
        out = []
        for path in paths:
            r = await client.get(path)
            out.append((r.status, r.headers.get("Content-Type", ""), await r.text()))
        return out


def _get(app, path: str) -> tuple[int, str, str]:
    return asyncio.run(_get_all(app, path))[0]


@pytest.mark.skipif(not CLIENT.exists(), reason="scripts/install_web.sh not run")
def test_the_page_its_script_and_the_client_are_served():
    kinds = {"/": "text/html", "/app.js": "text/javascript", "/livekit-client.umd.js": "text/javascript"}
    got = asyncio.run(_get_all(create_app(_settings(), ("es", "fr")), *kinds, "/languages"))
    for (path, kind), (status, ctype, body) in zip(kinds.items(), got, strict=False):
        assert status == 200 and ctype.startswith(kind) and body, path
    assert got[-1][2] == '["es", "fr"]'


@pytest.mark.skipif(not CLIENT.exists(), reason="scripts/install_web.sh not run")
def test_a_token_is_signed_for_the_room_and_identity_asked_for():
    import json

    status, _, body = (_get(create_app(_settings(), ("es",)), "/token?room=standup&identity=alice"))
    assert status == 200
    got = json.loads(body)
    assert got["url"] == "ws://127.0.0.1:7880"
    claims = jwt.decode(got["token"], SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["sub"] == "alice" and claims["iss"] == "k" and claims["video"]["room"] == "standup"
    assert claims["video"]["roomJoin"] is True


@pytest.mark.skipif(not CLIENT.exists(), reason="scripts/install_web.sh not run")
@pytest.mark.parametrize("query", ["room=a:b&identity=x", "room=r&identity=", "room=r&identity=livedub",
                                   "identity=x"])
def test_bad_names_and_the_bots_identity_get_no_token(query):
    status, _, body = (_get(create_app(_settings(), ("es",)), f"/token?{query}"))
    assert status == 400 and "bad" in body


@pytest.mark.skipif(not CLIENT.exists(), reason="scripts/install_web.sh not run")
def test_without_the_servers_key_the_page_will_not_start(monkeypatch):
    for k in ("LIVEDUB_LIVEKIT__API_KEY", "LIVEDUB_LIVEKIT__API_SECRET"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="LIVEDUB_LIVEKIT__API_KEY"):
        create_app(load_settings(), ("es",))
