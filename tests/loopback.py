"""An aiohttp server on 127.0.0.1 (a free port) in a thread of its own: the base of the fake servers."""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class LoopbackServer:
    path = ""  # appended to the address to make `url`

    def __init__(self):
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self.url = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def middlewares(self) -> list:
        return []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=self.middlewares(), client_max_size=2**30)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}{self.path}"
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._runner = None
