"""One event loop per process, on a daemon thread, where every endpoint lives.

`Dataset.map` calls a transform synchronously, batch after batch, possibly inside a notebook whose
own loop is running. Running each batch on a persistent background loop lets clients, connection
pools and the concurrency limit outlive a batch, and works the same in scripts and notebooks.
"""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Coroutine

from ..errors import HFSynthError

_loop: dict = {}  # pid -> loop: a forked worker must not use its parent's (dead) loop thread
PARENT_CHECK_SECONDS = 1.0


def _parent_pid_if_worker() -> int | None:
    """The parent's pid when this process is a `num_proc` worker, else None."""
    for name in ("multiprocess", "multiprocessing"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if module.parent_process() is not None:
            return os.getppid()
    return None


async def _exit_when_orphaned(parent: int) -> None:
    # A worker whose parent was killed would go on making paid calls: stop it.
    while True:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def process_loop() -> asyncio.AbstractEventLoop:
    loop = _loop.get(os.getpid())
    if loop is None:
        _loop.clear()
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="hf_synth-loop", daemon=True).start()
        parent = _parent_pid_if_worker()
        if parent is not None:
            asyncio.run_coroutine_threadsafe(_exit_when_orphaned(parent), loop)
        _loop[os.getpid()] = loop
    return loop


def run(coroutine: Coroutine) -> Any:
    """Run `coroutine` on this process's loop and wait for it; cancel it if we are interrupted."""
    future = asyncio.run_coroutine_threadsafe(coroutine, process_loop())
    try:
        return future.result()
    except HFSynthError as error:  # one sentence, raised from here: not the loop thread's frames
        raise error.with_traceback(None) from None
    except BaseException:
        future.cancel()
        raise
