"""hf_synth.ray on a local Ray cluster bound to loopback: the same output as Dataset.map, one budget for
the job, keys that reach the workers without being written, our errors as ours."""
import gc
import ipaddress
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: every listener on 127.0.0.1
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import datasets  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from command import hf_synth_cli  # noqa: E402
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit  # noqa: E402

import hf_synth  # noqa: E402
from hf_synth import LLM, CoEvolTransform, HFSynthError  # noqa: E402
from hf_synth.errors import EndpointError  # noqa: E402

ray = pytest.importorskip("ray")
from hf_synth.ray import run  # noqa: E402

# one worker runs them all, so the cluster starts once (pytest-xdist)
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]

MULTITURN = Path(hf_synth.__file__).parent / "data" / "multiturn_sample.jsonl"
ROWS = datasets.Dataset.from_dict({"instruction": [f"Name colour {i}." for i in range(12)],
                                   "output": [f"Colour {i}." for i in range(12)]})


def listening() -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening on this machine, IPv4 and IPv6."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                if family == socket.AF_INET:
                    raw = raw[::-1]
                else:  # four little-endian 32-bit words
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    before = listening()
    temp = tmp_path_factory.mktemp("ray")
    started = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
                       configure_logging=False)
    yield {"opened": listening() - before, "temp": temp, "address": started.address_info["address"]}
    ray.shutdown()


@pytest.fixture(autouse=True)
def failed_executions_let_go(caplog):
    """pytest keeps a test's log records, and Ray's hold a failed execution, actors and all, in their
    tracebacks: once the test is done they go, so that the next test has the cluster's CPUs."""
    yield
    caplog.get_records("call").clear()
    gc.collect()


@pytest.fixture
def fake():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        yield server


def test_every_ray_listener_is_on_loopback(cluster):
    opened = cluster["opened"]
    assert opened  # the GCS, the raylet, the object manager...
    assert all(loopback(address) for address, _ in opened), opened


def loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def test_output_equals_dataset_map_and_a_rerun_makes_no_requests(cluster, fake, tmp_path):
    transform = CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=2)
    expected = ROWS.map(transform, batched=True, batch_size=4).to_list()
    sent = len(fake.requests)
    assert sent == 12 * 16
    out = run(ROWS, transform, batch_size=4)
    assert arrow(out).to_pylist() == expected
    assert len(fake.requests) == sent  # the actors answered every request from the shared cache
    conversations = datasets.load_dataset("json", data_files=str(MULTITURN), split="train")
    multi = CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=1, max_turns=1)
    expected = conversations.map(multi, batched=True).to_list()
    for batch_format in ("pyarrow", "pandas", "numpy"):  # Ray Data's own map_batches, each batch format
        got = ray.data.from_arrow(conversations.data.table).map_batches(multi, batch_format=batch_format).take_all()
        assert [pd_plain(row["coevol_messages"]) for row in got] == [row["coevol_messages"] for row in expected]


def arrow(dataset):
    """A materialized Ray dataset as one Arrow table, in order."""
    import pyarrow as pa

    return pa.concat_tables(ray.get(dataset.to_arrow_refs()))


def pd_plain(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return [pd_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [pd_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: pd_plain(v) for k, v in value.items()}
    return value


def test_each_actor_gets_its_share_of_every_limit_and_the_keys_apart():
    from hf_synth.ray import for_actors

    judge = LLM(model="judge-model", base_url=["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"], max_concurrency=9)
    llm = LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-share-1234", max_concurrency=5,
              requests_per_minute=100, tokens_per_minute=5000, max_tokens=1000)
    shared, keys = for_actors(CoEvolTransform(llm, llms={"judge": judge}), actors=3)
    assert (shared.llm.max_concurrency, shared.llm.requests_per_minute, shared.llm.tokens_per_minute) == (1, 33, 1666)
    assert shared.llms["judge"].max_concurrency == 3 and shared.llms["judge"].replicas == judge.replicas
    assert shared.llm.identity() == llm.identity()  # the same requests: the same cache and fingerprint
    assert keys == {llm.api_key.env: "sk-share-1234"} and "sk-share-1234" not in repr(shared.__dict__)
    assert Path(shared.cache).is_absolute()
    _, none = for_actors(CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", tokens_per_minute=1500)), 4)
    assert none == {}
    floor, _ = for_actors(CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", tokens_per_minute=1500)), 4)
    assert floor.llm.tokens_per_minute == 1000  # never below one request's max_tokens


def test_the_job_has_one_concurrency_limit_however_many_actors(cluster):
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as server:
        llm = LLM(model="fake-model", base_url=server.url, max_concurrency=4)
        rows = datasets.concatenate_datasets([ROWS, ROWS.map(lambda row: {"output": row["output"] + "!"})])
        out = run(rows, CoEvolTransform(llm, max_rounds=1), actors=2, batch_size=3)
        assert out.count() == 24 and len(server.requests) == 24 * 8
        assert server.peak_in_flight <= 4  # each of the 2 actors sends at most 2 at once


def test_keys_reach_the_workers_and_nothing_is_written(cluster, tmp_path):
    key = "sk-ray-test-4f9c2b7d1e"
    with FakeOpenAI(coevol_replies(prefer_edit), api_key=key) as server:
        out = run(ROWS.select(range(2)), CoEvolTransform(LLM(model="fake-model", base_url=server.url, api_key=key),
                                                        max_rounds=1), output=str(tmp_path / "out"))
        assert out is None and len(server.requests) == 16
    written = pq.read_table(str(tmp_path / "out")).to_pylist()
    assert [row["coevol_error"] for row in written] == [None, None]
    for path in [*Path(cluster["temp"]).rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file() and not path.is_socket():
            assert key.encode() not in path.read_bytes(), path


def test_an_endpoint_error_reaches_the_caller_as_itself_in_one_sentence(cluster):
    with FakeOpenAI(coevol_replies(prefer_edit), api_key="the-right-key") as server:
        transform = CoEvolTransform(LLM(model="fake-model", base_url=server.url, api_key="a-wrong-key"), max_rounds=1)
        with pytest.raises(EndpointError) as raised:
            run(ROWS.select(range(2)), transform)
    message = str(raised.value)
    assert message.startswith(f"{server.url.rstrip('/')} rejected the API key (401)") and "\n" not in message
    assert type(raised.value) is EndpointError


AFTER_A_FAILED_RUN = """
import sys, time
import datasets, ray
from hf_synth import LLM, CoEvolTransform, EndpointError
from hf_synth.ray import run
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
rows = datasets.Dataset.from_dict({"instruction": ["a", "b"], "output": ["x", "y"]})
try:
    run(rows, CoEvolTransform(LLM(model="m", base_url=sys.argv[2], api_key="a-wrong-key"), max_rounds=1))
except EndpointError:
    pass
deadline = time.monotonic() + 30
while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
    time.sleep(0.2)
print(ray.available_resources().get("CPU", 0), "of", ray.cluster_resources()["CPU"], "CPUs free")
"""


def test_a_failed_runs_actors_end_with_it(cluster):
    # in a process of its own: pytest's log capture would keep Ray's log records, whose tracebacks hold
    # the failed execution and its actors (a user's handlers keep none)
    import subprocess
    import sys

    with FakeOpenAI(coevol_replies(prefer_edit), api_key="the-right-key") as server:
        result = subprocess.run([sys.executable, "-c", AFTER_A_FAILED_RUN, cluster["address"], server.url],
                                capture_output=True, text=True, timeout=300)
    # the next run gets the cluster's CPUs at once, not once a garbage collection happens to free them
    assert result.stdout.strip().splitlines()[-1] == "2.0 of 2.0 CPUs free", result.stderr[-3000:]


def test_a_block_of_failed_rows_writes_typed_parquet_after_a_repartition(cluster, fake, tmp_path):
    bad = datasets.Dataset.from_dict({"instruction": [None, "", None, "  "], "output": ["a", "b", None, "d"]})
    mapped = ray.data.from_arrow(bad.data.table).repartition(4)
    run(mapped, CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=1), batch_size=1,
        output=str(tmp_path / "out"))
    table = pq.read_table(str(tmp_path / "out"))
    assert table.num_rows == 4 and str(table.schema.field("coevol_output").type) == "string"
    assert all(error.startswith("instruction is") for error in table.column("coevol_error").to_pylist())
    assert len(fake.requests) == 0


def test_the_cli_runs_a_method_on_a_cluster(cluster, fake, tmp_path):
    import subprocess
    import sys

    sample = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"
    common = ["coevol", str(sample), "--limit", "4", "--max-rounds", "1", "--model", "m", "--base-url", fake.url]
    here = hf_synth_cli(*common, "--output", tmp_path / "here")
    assert here.returncode == 0, here.stderr
    sent = len(fake.requests)
    # the running cluster, joined by its address (the wrong-key test below starts one with --ray local)
    on_ray = subprocess.run([sys.executable, "-m", "hf_synth.cli", *common, "--output", str(tmp_path / "ray_out"),
                             "--ray", cluster["address"], "--ray-checkpoint", str(tmp_path / "batches")],
                            capture_output=True, text=True, timeout=300)
    assert on_ray.returncode == 0, on_ray.stderr
    assert datasets.load_from_disk(str(tmp_path / "ray_out")).to_list() == \
        datasets.load_from_disk(str(tmp_path / "here")).to_list()
    assert len(fake.requests) == sent == 4 * 8  # the actors found every reply in the request cache
    assert "rows: 4, failed: 0" in on_ray.stdout
    assert "this run: 0 requests sent, 32 from cache" in on_ray.stdout  # the actors' counts reach the summary
    assert len(list((tmp_path / "batches").rglob("*.arrow"))) >= 1


@pytest.mark.xdist_group("ray_local")  # a cluster of its own: it need not wait for the others' worker
def test_a_wrong_key_under_the_cli_on_a_local_cluster_is_one_sentence(tmp_path):
    import subprocess
    import sys

    sample = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        with FakeOpenAI(coevol_replies(prefer_edit), api_key="the-right-key") as server:
            result = subprocess.run(
                [sys.executable, "-m", "hf_synth.cli", "coevol", str(sample), "--limit", "4", "--model", "m",
                 "--base-url", server.url, "--api-key-env", "WRONG_KEY", "--output", str(tmp_path / "out"),
                 "--ray", "local"], capture_output=True, text=True, timeout=300,
                env={**os.environ, "RAY_TMPDIR": ray_dir, "WRONG_KEY": "a-wrong-key"})
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    # (our status line, logged every 30 s, comes too when a busy machine takes that long to start Ray)
    lines = [line for line in result.stderr.strip().splitlines() if not re.match(r"\d\d:\d\d:\d\d rows \d", line)]
    assert result.returncode == 1 and lines[-1].startswith(f"error: {server.url.rstrip('/')} rejected the API key")
    # the run's banner, at most one line of Ray's core, and the sentence: not Ray's progress, warnings
    # and logged copy of the actor's traceback
    assert len(lines) <= 3 and "Traceback" not in result.stderr, result.stderr


def processes_named(marker: bytes) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def actor_pids() -> list[int]:
    """Processes of this cluster's actors that run a transform (Ray names them after the UDF): those the
    test process started, through the raylet, not another test's cluster running meanwhile."""
    return [pid for pid in processes_named(b"MapBatches(_Worker)") if descends_from(pid, os.getpid())]


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid == ancestor:
            return True
    return False


def test_an_actor_killed_mid_job_costs_only_its_requests_in_flight(cluster):
    import signal
    import threading

    killed = []

    def kill_one_actor(body):
        with lock:
            if len(server.requests) == 40 and not killed:
                pid = actor_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return None

    lock = threading.Lock()
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as server:
        server.fault_for = kill_one_actor
        llm = LLM(model="fake-model", base_url=server.url, max_concurrency=4)
        out = run(ROWS, CoEvolTransform(llm, max_rounds=1), actors=2, batch_size=3)
        assert killed and arrow(out).column("coevol_error").to_pylist() == [None] * 12
        # 96 requests for the job, and what the killed actor lost is sent again: its requests in flight, at
        # most its half of the concurrency of 4 (what it completed is in its reply log, replayed)
        assert 96 <= len(server.requests) <= 96 + 2, len(server.requests)


def test_the_job_outlives_its_keys_actor_and_a_worker_restarted_after_it(cluster):
    import signal
    import threading

    killed = []

    def kill_the_keys_then_an_actor(body):
        with lock:
            if len(server.requests) == 30 and not killed:
                keys = processes_named(b"ray::_Keys")
                assert keys, "no keys actor found"
                os.kill(keys[0], signal.SIGKILL)
                killed.append(keys[0])
                os.kill(actor_pids()[0], signal.SIGKILL)  # restarted: asks for the keys again
        return None

    lock = threading.Lock()
    key = "sk-keys-actor-" + "q" * 24
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05, api_key=key) as server:
        server.fault_for = kill_the_keys_then_an_actor
        llm = LLM(model="fake-model", base_url=server.url, api_key=key, max_concurrency=4)
        out = run(ROWS, CoEvolTransform(llm, max_rounds=1), actors=2, batch_size=3)
        assert killed and arrow(out).column("coevol_error").to_pylist() == [None] * 12


def test_a_checkpoint_makes_a_rerun_free_on_any_node_and_follows_the_fingerprint(cluster, fake, tmp_path):
    shared = f"file://{tmp_path / 'shared'}"  # stands in for storage every node sees
    # (one actor per run: the batches, not the actors, are what a checkpoint keeps)
    llm = LLM(model="fake-model", base_url=fake.url)
    first = arrow(run(ROWS, CoEvolTransform(llm, max_rounds=1, cache=False), batch_size=3, actors=1, checkpoint=shared))
    assert len(fake.requests) == 12 * 8
    stored = sorted((tmp_path / "shared").rglob("*.arrow"))
    assert len(stored) == 4  # one per batch of 3 rows
    # another node: no request cache of its own, and the checkpoint answers every batch
    again = arrow(run(ROWS, CoEvolTransform(llm, max_rounds=1, cache=False), batch_size=3, actors=1, checkpoint=shared))
    assert again.to_pylist() == first.to_pylist() and len(fake.requests) == 12 * 8
    # a damaged batch runs again; other options are another transform: nothing of it is reused
    stored[0].write_bytes(b"not arrow")
    run(ROWS, CoEvolTransform(llm, max_rounds=1, cache=False), batch_size=3, actors=1, checkpoint=shared)
    assert len(fake.requests) == 12 * 8 + 3 * 8
    before = len(fake.requests)
    edited = arrow(run(ROWS, CoEvolTransform(llm, max_rounds=1, mode="edit", cache=False), batch_size=3,
                       checkpoint=shared))
    assert len(fake.requests) - before == sum(u["calls"] for u in edited.column("coevol_usage").to_pylist()) >= 12


def test_a_checkpoint_never_freezes_failures_and_an_unwritable_one_is_said_before_any_request(cluster, fake, tmp_path):
    shared = f"file://{tmp_path / 'shared'}"
    llm = LLM(model="fake-model", base_url=fake.url, max_retries=0)
    fake.fault_for = lambda body: 400 if "colour 4." in str(body["messages"]) else None  # one row fails
    first = arrow(run(ROWS, CoEvolTransform(llm, mode="edit", cache=False), batch_size=3, actors=1, checkpoint=shared))
    assert sum(error is not None for error in first.column("coevol_error").to_pylist()) == 1
    fake.fault_for = None  # the endpoint heals: the batch holding the failure runs again, the others do not
    before = len(fake.requests)
    again = arrow(run(ROWS, CoEvolTransform(llm, mode="edit", cache=False), batch_size=3, actors=1, checkpoint=shared))
    assert again.column("coevol_error").to_pylist() == [None] * 12 and len(fake.requests) - before == 3

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(HFSynthError, match=r"The checkpoint .* cannot be written .*: point checkpoint="):
        run(ROWS, CoEvolTransform(llm, mode="edit", cache=False), checkpoint=f"file://{blocked}/sub")
    assert len(fake.requests) - before == 3

