"""Room access tokens, signed with the server's API key and secret from settings (never logged)."""

from __future__ import annotations

from workers.errors import ConfigError
from workers.settings import LiveKitSettings


def room_token(lk: LiveKitSettings, identity: str, room: str, *, agent: bool = False, name: str = "") -> str:
    """A JWT that lets `identity` join `room`, publish and subscribe; `agent` marks LiveDub's own bot,
    so that other bots (and the page) can tell its dubbed tracks from people."""
    from livekit import api

    if not lk.api_key or lk.api_secret is None:
        raise ConfigError("LiveKit needs LIVEDUB_LIVEKIT__API_KEY and LIVEDUB_LIVEKIT__API_SECRET "
                          "(`deploy/local/livedub-local.sh env` prints the local server's)")
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    tok = api.AccessToken(lk.api_key, lk.api_secret.get_secret_value()).with_identity(identity).with_grants(grants)
    if name:
        tok = tok.with_name(name)
    if agent:
        tok = tok.with_kind("agent")
    return tok.to_jwt()
