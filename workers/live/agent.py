"""The bot's worker form: one process that joins rooms on demand (`livedub call --rooms 'PATTERN'`).

A Kubernetes Deployment cannot be told which room to join, so the agent asks the server: every
`poll_s` it lists the rooms (LiveKit's RoomService API, signed with the same key and secret) and
gives each room that matches the pattern and has a person in it a `CallBot`. All rooms share one
`Dubbing`: the models load once. A bot leaves a room that has had nobody to dub for `idle_s`, so
the server can close it; a room already holding a LiveDub is left to it. If two replicas join
one room anyway (both saw it free), the server keeps the later one (same identity) and the earlier
one stops for good instead of rejoining: no tug of war.

The languages of a room: `--to`, unless the room's metadata (set by whoever creates the room,
e.g. `lk room create --metadata`) says otherwise: `{"livedub": {"to": ["es", "fr"]}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging

from monitoring.metrics import Metrics
from workers.errors import ConfigError
from workers.live.bot import CallBot
from workers.live.dubbing import Dubbing, EmbeddedDubbing
from workers.live.tokens import room_token
from workers.settings import Settings

log = logging.getLogger(__name__)


def room_languages(metadata: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The target languages a room's metadata asks for, else `default` (bad metadata is logged, not fatal:
    the room is someone else's)."""
    if not metadata:
        return default
    try:
        want = json.loads(metadata).get("livedub", {}).get("to")
    except (ValueError, AttributeError):
        log.warning("room metadata is not a JSON object: %.80r; dubbing into %s", metadata, ",".join(default))
        return default
    if want is None:
        return default
    if not isinstance(want, list) or not want or not all(isinstance(x, str) and x for x in want):
        log.warning("room metadata livedub.to must be a list of language codes, not %.80r; dubbing into %s",
                    want, ",".join(default))
        return default
    return tuple(want)


class RoomAgent:
    """Runs a `CallBot` in every matching room that has someone in it, until `stop`."""

    def __init__(self, settings: Settings, targets: tuple[str, ...], *, pattern: str = "*",
                 dubbing: Dubbing | None = None, metrics: Metrics | None = None) -> None:
        if not targets:
            raise ConfigError("no target language given (e.g. --to es)")
        room_token(settings.livekit, settings.livekit.identity, "check")  # no key or secret: say so at once
        self.settings = settings
        self.targets = targets
        self.pattern = pattern
        self.metrics = metrics
        self.dubbing = dubbing or EmbeddedDubbing.for_calls(settings, metrics)
        self.bots: dict[str, asyncio.Task] = {}  # room name -> its bot's task

    async def run(self, stop: asyncio.Event) -> None:
        from livekit import api

        lk = self.settings.livekit
        await asyncio.get_running_loop().run_in_executor(None, self.dubbing.load)
        try:
            async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret.get_secret_value()) as server:
                while not stop.is_set():
                    try:
                        await self.reconcile(server, stop)
                    except Exception as e:  # the server is down or restarting: the bots ride it out themselves
                        log.warning("listing rooms failed: %s: %s", type(e).__name__, e)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), lk.poll_s)
        finally:
            await asyncio.gather(*self.bots.values(), return_exceptions=True)  # they see `stop` and leave
            self.dubbing.close()

    async def reconcile(self, server: object, stop: asyncio.Event) -> None:
        """Start a bot in each room that needs one; forget bots that have left."""
        from livekit import api

        for name, task in list(self.bots.items()):
            if task.done():
                del self.bots[name]
        lk = self.settings.livekit
        rooms = (await server.room.list_rooms(api.ListRoomsRequest())).rooms
        for room in rooms:
            if room.name in self.bots or not fnmatch.fnmatchcase(room.name, self.pattern) or room.num_participants == 0:
                continue
            if len(self.bots) >= lk.max_rooms:
                log.warning("room %s not joined: already in %d rooms (LIVEDUB_LIVEKIT__MAX_ROOMS)", room.name,
                            len(self.bots))
                continue
            people = (await server.room.list_participants(api.ListParticipantsRequest(room=room.name))).participants
            if any(p.identity == lk.identity for p in people):  # another LiveDub (replica) dubs it
                continue
            if not any(p.kind != api.ParticipantInfo.Kind.AGENT for p in people):
                continue
            targets = room_languages(room.metadata, self.targets)
            bot = CallBot(self.settings, room.name, targets, dubbing=self.dubbing, metrics=self.metrics,
                          idle_s=lk.idle_s)
            log.info("room %s: %d in it; joining to dub into %s", room.name, len(people), ",".join(targets))
            self.bots[room.name] = asyncio.ensure_future(self._guard(bot, stop))

    async def _guard(self, bot: CallBot, stop: asyncio.Event) -> None:
        try:
            await bot.stay(stop)
        except Exception:  # one room's failure never takes the others down
            log.exception("room %s: the bot failed", bot.room_name)
