"""A real headless Chromium (Debian's), driven over the DevTools protocol: open a page, evaluate
JavaScript in it, take a screenshot. Fake camera and microphone can be fed from files, as
Chromium's own WebRTC tests do."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.ports import free_port

FLAGS = [  # as this machine's probe runs it: no sandbox as root, no network besides loopback
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
    "--window-size=900,700",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One browser process showing `url`; `close()` ends it."""

    def __init__(self, url: str, profile: Path, *, fake_video: Path | None = None,
                 fake_audio: Path | None = None) -> None:
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (scripts/install_web.sh --browser)")
        self.port = free_port()
        flags = [*FLAGS, f"--remote-debugging-port={self.port}", f"--user-data-dir={profile}"]
        if fake_video or fake_audio:
            flags.append("--use-fake-device-for-media-stream")
        if fake_video:
            flags.append(f"--use-file-for-fake-video-capture={fake_video}")
        if fake_audio:
            flags.append(f"--use-file-for-fake-audio-capture={fake_audio}")
        self.log = profile / "chromium.log"
        self.proc = subprocess.Popen([exe, *flags, url], stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self._ids = itertools.count(1)
        self._ws = self._connect()

    def _connect(self):
        import websocket  # websocket-client

        deadline = time.monotonic() + 30
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                return websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                                   suppress_origin=True)
            except (requests.RequestException, StopIteration, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"chromium did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result."""
        mid = next(self._ids)
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float, every: float = 0.5) -> Any:
        """Poll `expression` until it is truthy (throwing counts as not yet: the page may still load); its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value not in (None, False, 0, "") or time.monotonic() > deadline:
                return value
            time.sleep(every)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
