"""One event loop per process, on a daemon thread, where every endpoint lives.

`Dataset.map` calls a transform synchronously, batch after batch, possibly inside a notebook whose
own loop is running. Running each batch on a persistent background loop lets clients, connection
pools and the concurrency limit outlive a batch, and works the same in scripts and notebooks.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any, Coroutine

from ..errors import HFSynthError

_loop: dict = {}  # pid -> loop: a forked worker must not use its parent's (dead) loop thread
PARENT_CHECK_SECONDS = 1.0


def _is_worker() -> bool:
    """Whether this process is a `num_proc` worker (of `multiprocess` or `multiprocessing`)."""
    for name in ("multiprocess", "multiprocessing"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if module.parent_process() is not None:
            return True
    return False


_watched: set[int] = set()  # pids whose parent is watched


def watch_parent() -> None:
    """In a `num_proc` worker (forked or spawned), exit once the parent is gone: a worker whose parent
    was killed would go on making paid calls, or, idle, linger for ever. Started in every forked child
    (idle pool workers never run our code otherwise) and with a worker's loop (spawned workers)."""
    if os.getpid() in _watched:
        return
    _watched.add(os.getpid())
    parent = os.getppid()

    def watch() -> None:
        time.sleep(PARENT_CHECK_SECONDS)  # (a forked child says whether it is a pool worker once started)
        if not _is_worker():  # (its parent may be gone already: then it exits at once)
            return
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="hf_synth-parent-watch", daemon=True).start()


os.register_at_fork(after_in_child=watch_parent)


def process_loop() -> asyncio.AbstractEventLoop:
    loop = _loop.get(os.getpid())
    if loop is None:
        _loop.clear()
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="hf_synth-loop", daemon=True).start()
        if _is_worker():
            watch_parent()
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
