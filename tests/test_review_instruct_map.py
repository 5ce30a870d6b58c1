"""ReviewInstructTransform and DifficultyTransform through Dataset.map against the fake HTTP server."""
import datasets
import pytest
from fake_openai import FakeOpenAI, agent_of, review_replies

from hf_synth import LLM, InputError, ReviewInstructTransform
from hf_synth.methods.review_instruct_prompts import PERSPECTIVES
from hf_synth.status import counts
from hf_synth.transforms import DifficultyTransform

SEEDS = {"id": [0, 1, 2], "instruction": ["Explain tides", "Translate", "Name a planet"],
         "input": ["", "bonjour", ""]}


@pytest.fixture
def review_server():
    with FakeOpenAI(review_replies()) as fake:
        yield fake


@pytest.fixture
def review_llm(review_server):
    return LLM(model="fake-model", base_url=review_server.url, max_retries=1)


def test_map_grows_every_seed_into_an_answered_conversation(review_llm, review_server):
    ds = datasets.Dataset.from_dict(SEEDS)
    out = ds.map(ReviewInstructTransform(review_llm), batched=True, batch_size=2)
    assert out["id"] == [0, 1, 2] and out["instruction"] == SEEDS["instruction"]
    assert out["review_error"] == [None, None, None]
    second = out[1]["review_messages"]
    assert second == [{"role": "user", "content": "Translate\n\nbonjour"}, {"role": "assistant", "content": "answer 1"},
                      {"role": "user", "content": "question 2"}, {"role": "assistant", "content": "answer 2"},
                      {"role": "user", "content": "question 3"}, {"role": "assistant", "content": "answer 3"}]
    assert [u["calls"] for u in out["review_usage"]] == [11, 11, 11]     # 3 answers + 2 × (3 reviews + chairman)
    assert len(review_server.requests) == 33
    trace = out[0]["review_trace"]
    assert [r["direction"] for r in trace] == ["depth", "depth", None]
    assert trace[0]["verdicts"] == [] and len(trace[0]["reviews"]) == 3  # the Chairman weighs the reviews itself
    majority = ds.select([0]).map(ReviewInstructTransform(review_llm, direction="majority"), batched=True)
    assert majority[0]["review_trace"][0]["verdicts"] == ["insufficient"] * 3
    assert trace[0]["reasoning"] == "the answer is thin." and trace[0]["next_instruction"] == "question 2"
    assert out.features["review_error"] == datasets.Value("string")


def test_rounds_and_reviewers_options_and_a_free_rerun(review_llm, review_server):
    ds = datasets.Dataset.from_dict(SEEDS).select([0])
    out = ds.map(ReviewInstructTransform(review_llm, rounds=4, num_reviewers=1), batched=True)
    assert len(out[0]["review_messages"]) == 8 and out[0]["review_usage"]["calls"] == 4 + 3 * 2
    sent = counts().sent
    again = ds.map(ReviewInstructTransform(review_llm, rounds=4, num_reviewers=1), batched=True,
                   load_from_cache_file=False)
    assert counts().sent == sent and again.to_list() == out.to_list()


def test_each_role_and_reviewer_can_have_its_own_llm(review_server):
    url = review_server.url
    transform = ReviewInstructTransform(
        LLM(model="main", base_url=url), rounds=2,
        llms={"chairman": LLM(model="chair", base_url=url), "reviewer": LLM(model="rev", base_url=url),
              "reviewer_2": LLM(model="rev2", base_url=url)})
    datasets.Dataset.from_dict(SEEDS).select([0]).map(transform, batched=True)
    by_agent = {}
    for body in review_server.requests:
        agent = agent_of(body["messages"])
        if agent == "reviewer":
            agent = next(f"reviewer_{i}" for i, p in enumerate(PERSPECTIVES, 1) if p in body["messages"][0]["content"])
        by_agent.setdefault(agent, set()).add(body["model"])
    assert by_agent == {"candidate": {"main"}, "chairman": {"chair"}, "reviewer_1": {"rev"}, "reviewer_2": {"rev2"},
                        "reviewer_3": {"rev"}}


def test_bad_seeds_are_marked_and_kept_in_order(review_llm):
    ds = datasets.Dataset.from_dict({"instruction": ["ok", None, "  ", "ok"], "input": ["", "", "", None]})
    out = ds.map(ReviewInstructTransform(review_llm, rounds=2, num_reviewers=1), batched=True)
    assert out["review_error"] == [None, "instruction is None, expected text", "instruction is empty", None]
    assert out["review_messages"][1] is None and len(out["review_messages"][3]) == 4


def test_missing_instruction_column_says_how_to_name_it(review_llm):
    ds = datasets.Dataset.from_dict({"prompt": ["x"]})
    with pytest.raises(InputError, match=r"no column 'instruction' among \['prompt'\].*instruction_column="):
        ds.map(ReviewInstructTransform(review_llm), batched=True)
    out = ds.map(ReviewInstructTransform(review_llm, rounds=1, instruction_column="prompt"), batched=True)
    assert out["review_messages"] == [[{"role": "user", "content": "x"}, {"role": "assistant", "content": "answer 1"}]]


def test_defaults_and_option_errors():
    transform = ReviewInstructTransform()
    assert transform.llm.embedded and transform.llm.temperature == 0.1
    assert (transform.rounds, transform.num_reviewers) == (3, 3)
    assert ReviewInstructTransform(perspectives=["a", "b"]).num_reviewers == 2
    with pytest.raises(ValueError, match="num_reviewers=2 but 3 perspectives"):
        ReviewInstructTransform(num_reviewers=2, perspectives=["a", "b", "c"])
    with pytest.raises(ValueError, match="pass perspectives="):
        ReviewInstructTransform(num_reviewers=len(PERSPECTIVES) + 1)
    with pytest.raises(ValueError, match="must differ"):
        ReviewInstructTransform(perspectives=["a", "a"])
    with pytest.raises(ValueError, match="rounds=0"):
        ReviewInstructTransform(rounds=0)


def test_fingerprint_follows_what_changes_the_output(review_server):
    from datasets.fingerprint import Hasher

    def fingerprint(**kwargs):
        llm = LLM(model="m", base_url=review_server.url, api_key=kwargs.pop("api_key", None),
                  max_concurrency=kwargs.pop("max_concurrency", 64))
        return Hasher.hash(ReviewInstructTransform(llm, **kwargs))

    base = fingerprint()
    assert fingerprint() == base
    assert fingerprint(api_key="sk-secret", max_concurrency=3) == base
    assert len({base, fingerprint(rounds=2), fingerprint(num_reviewers=1), fingerprint(perspectives=["x", "y", "z"]),
                fingerprint(instruction_column="prompt")}) == 5


def test_difficulty_transform_labels_every_user_turn(review_llm, review_server):
    grown = datasets.Dataset.from_dict(SEEDS).map(ReviewInstructTransform(review_llm, num_reviewers=1), batched=True)
    before = len(review_server.requests)
    rated = grown.map(DifficultyTransform(review_llm), batched=True)
    # the fake judge calls a turn easy, medium, hard by how many user turns it sees
    assert rated["difficulty_labels"] == [["easy", "medium", "hard"]] * 3
    assert rated["difficulty_error"] == [None] * 3
    assert len(review_server.requests) - before == 9
    # rows and turns are rated concurrently, so the requests come in any order: each shows the
    # conversation up to the user turn it rates, without that turn's answer
    seen = [b["messages"][-1]["content"] for b in review_server.requests[before:]]
    third = [prompt for prompt in seen if "User: question 3" in prompt]
    assert len(third) == 3 and not any("Assistant: answer 3" in prompt for prompt in third)


def test_difficulty_transform_marks_bad_conversations_and_names_missing_columns(review_llm):
    ds = datasets.Dataset.from_dict({"messages": [[{"role": "assistant", "content": "hi"}],
                                                  [{"role": "user", "content": "Prove it"}]]})
    rated = ds.map(DifficultyTransform(review_llm), batched=True)
    assert rated["difficulty_error"][0].startswith("turn 1 is 'assistant' where 'user' was expected")
    assert rated["difficulty_labels"] == [None, ["easy"]]
    with pytest.raises(InputError, match="messages_column="):
        datasets.Dataset.from_dict({"text": ["x"]}).map(DifficultyTransform(review_llm), batched=True)


def test_an_llm_that_names_only_a_model_samples_at_the_authors_settings(review_server):
    """The method's sampling defaults fill what the user left unset; what the user set wins, per agent too."""
    from hf_synth.runs import recipe

    seeds = datasets.Dataset.from_dict(SEEDS).select([0])
    named = LLM(model="fake-model", base_url=review_server.url)
    transform = ReviewInstructTransform(named, rounds=2, num_reviewers=1,
                                        llms={"reviewer": LLM(model="fake-model", base_url=review_server.url,
                                                              max_tokens=300, temperature=0.7)})
    seeds.map(transform, batched=True)
    sent = {(agent_of(body["messages"]), body["temperature"], body["max_tokens"]) for body in review_server.requests}
    assert sent == {("candidate", 0.1, 8192), ("reviewer", 0.7, 300), ("chairman", 0.1, 8192)}
    recorded = recipe.make([transform])["steps"][0]
    assert (recorded["llm"]["temperature"], recorded["llm"]["max_tokens"]) == (0.1, 8192)   # what was sent
    assert (recorded["llms"]["reviewer_1"]["temperature"], recorded["llms"]["reviewer_1"]["max_tokens"]) == (0.7, 300)


def test_reviewers_that_find_little_to_fault_send_the_chairman_in_breadth(review_server):
    """The reviewers are asked to criticise the answer's flaws, as the authors ask, and nothing more: a
    reviewer that is not forbidden to say the answer is right says so when it is, and a panel of mostly
    positive comments moves the conversation in breadth (the Chairman's rule, weighed by the Chairman)."""
    def reply(messages):
        agent, prompt = agent_of(messages), messages[-1]["content"]
        if agent == "reviewer":  # a reviewer that follows its instructions on a sound answer
            return ("It lacks nuance and detail." if "praise" in prompt.lower()
                    else "Basically correct; however, one example would help.")
        if agent == "chairman":  # a Chairman that weighs the comments as it is told
            positive = prompt.count("Basically correct") > prompt.count("It lacks")
            return f"Question: next\nDirection: {'breadth' if positive else 'depth'}\nReasoning: weighed the panel."
        return "A sound answer."

    review_server.reply = reply
    seeds = datasets.Dataset.from_dict(SEEDS).select([0])
    out = seeds.map(ReviewInstructTransform(LLM(model="fake-model", base_url=review_server.url), rounds=2),
                    batched=True)
    assert out["review_error"] == [None]
    assert [r["direction"] for r in out[0]["review_trace"]] == ["breadth", None]
