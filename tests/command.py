"""The `hf-synth` command as the tests run it: in this process by default (a new Python process costs
about 1.4 s before any work, most of it importing `datasets`), or in a new process where that is what
a test checks (signals, what a process inherits or prints at start-up, the `-m hf_synth.cli` entry)."""
import contextlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path


def hf_synth_cli(*args, env: dict | None = None, cwd=None, timeout: float = 300,
                 new_process: bool = False) -> subprocess.CompletedProcess:
    """Run `hf-synth ARGS` with `env` added to the environment, in `cwd`; the exit code and what it
    printed, as `subprocess.run` gives them."""
    args = [str(arg) for arg in args]
    if new_process:
        return subprocess.run([sys.executable, "-m", "hf_synth.cli", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})
    from hf_synth.cli import main
    from hf_synth.llm.door import forget_endpoints

    out, err = io.StringIO(), io.StringIO()
    environment, here = dict(os.environ), os.getcwd()
    with _settings_read_at_import(env or {}):
        os.environ.update(env or {})
        try:
            if cwd is not None:
                os.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(args)
                except SystemExit as exit_:  # argparse's usage errors and --help
                    code = exit_.code if isinstance(exit_.code, int) else 1
                except Exception:  # an uncaught error: a traceback and exit code 1, as Python gives them
                    traceback.print_exc()
                    code = 1
        finally:
            os.chdir(here)
            os.environ.clear()
            os.environ.update(environment)
            forget_endpoints()  # the next command starts with no connections or breakers, as a new process would
    return subprocess.CompletedProcess(["hf-synth", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _settings_read_at_import(env: dict):
    """The variables `datasets` and `huggingface_hub` read once, when imported, set in their modules as a
    new process would read them."""
    import datasets.config
    import huggingface_hub.constants as hub

    def on(value: str) -> bool:
        return value.upper() in ("1", "ON", "YES", "TRUE")

    read = {"HF_DATASETS_CACHE": [(datasets.config, "HF_DATASETS_CACHE", Path)],
            "HF_HUB_OFFLINE": [(datasets.config, "HF_HUB_OFFLINE", on), (hub, "HF_HUB_OFFLINE", on)]}
    previous = []
    for name, value in env.items():
        for module, attribute, parse in read.get(name, ()):
            previous.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, parse(value))
    try:
        yield
    finally:
        for module, attribute, value in reversed(previous):
            setattr(module, attribute, value)
