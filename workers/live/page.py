"""`livedub serve`: the call page (workers/live/web), its LiveKit JS client, and room tokens.

A small aiohttp app: `/` the page, `/app.js` its script, `/livekit-client.umd.js` the client
from npm (installed by scripts/install_web.sh), `/languages` the languages the bot dubs into,
`/token?room=&identity=` a token for the room signed with the server's key from settings. The
token endpoint is for a meeting you run yourself (local or behind your own login); a product
that embeds LiveDub issues tokens from its own backend instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from workers.errors import ConfigError, LiveDubError
from workers.live.tokens import room_token
from workers.settings import Settings

WEB = Path(__file__).resolve().parent / "web"
CLIENT = WEB / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # room names and identities: no ':' (track names use it)


def create_app(settings: Settings, languages: tuple[str, ...]) -> web.Application:
    """The page's web app for a bot dubbing into `languages`."""
    if not CLIENT.exists():
        raise ConfigError(f"the LiveKit JS client is not installed ({CLIENT}): run scripts/install_web.sh")
    lk = settings.livekit
    if not lk.api_key or lk.api_secret is None:
        room_token(lk, "check", "check")  # raises the ConfigError that names the settings

    async def token(request: web.Request) -> web.Response:
        room, identity = request.query.get("room", ""), request.query.get("identity", "")
        bad = [f"{k}={v!r}" for k, v in (("room", room), ("identity", identity)) if not NAME.match(v)]
        if bad or identity == lk.identity:
            raise web.HTTPBadRequest(text=f"bad {', '.join(bad) or 'identity: taken by the bot'} "
                                          "(1-64 of A-Z a-z 0-9 _ . @ -)")
        try:
            return web.json_response({"url": lk.url, "token": room_token(lk, identity, room, name=identity)})
        except LiveDubError as e:
            raise web.HTTPInternalServerError(text=str(e)) from e

    async def langs(_: web.Request) -> web.Response:
        return web.json_response(list(languages))

    def file(path: Path, kind: str):
        async def handler(_: web.Request) -> web.FileResponse:
            return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-cache"})
        return handler

    app = web.Application()
    app.router.add_get("/", file(WEB / "index.html", "text/html; charset=utf-8"))
    app.router.add_get("/app.js", file(WEB / "app.js", "text/javascript; charset=utf-8"))
    app.router.add_get("/livekit-client.umd.js", file(CLIENT, "text/javascript; charset=utf-8"))
    app.router.add_get("/languages", langs)
    app.router.add_get("/token", token)
    return app
