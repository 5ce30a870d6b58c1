import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# datasets and huggingface_hub read it once, when imported: the tests (and the commands they run in this
# process) never reach for the Hub unless a test starts a process that is told otherwise
os.environ["HF_HUB_OFFLINE"] = "1"

from fake_openai import FakeOpenAI, coevol_replies, prefer_edit  # noqa: E402

from hf_synth import LLM  # noqa: E402
from hf_synth.protocol import Chat  # noqa: E402


def pytest_collection_modifyitems(items):
    """The slow tests first: under pytest-xdist, a long test that starts last ends the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every test gets its own request cache and datasets cache."""
    monkeypatch.setenv("HF_SYNTH_CACHE", str(tmp_path / "hf_synth_cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))  # (for subprocesses)
    import datasets.config  # datasets read the variable when imported: this process needs its setting changed
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server():
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        yield fake


@pytest.fixture
def llm(server):
    return LLM(model="fake-model", base_url=server.url, max_retries=2)


def drive(protocol, answer):
    """Run a method protocol with replies from `answer(chat) -> str`; returns (result, chats sent). An
    exception `answer` returns (a `CallFailed`) is thrown into the protocol, as the runner does."""
    sent = []
    try:
        request = next(protocol)
        while True:
            chats = [request] if isinstance(request, Chat) else request
            sent.extend(chats)
            replies = [answer(chat) for chat in chats]
            failed = next((reply for reply in replies if isinstance(reply, BaseException)), None)
            if failed is not None:
                request = protocol.throw(failed)
            else:
                request = protocol.send(replies[0] if isinstance(request, Chat) else replies)
    except StopIteration as done:
        return done.value, sent
