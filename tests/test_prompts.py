"""The prompts say what the paper's Tables 6-9 say. The quotes below are typed from the paper."""
from conftest import drive
from fake_openai import agent_of

from hf_synth.methods import coevol_prompts as prompts
from hf_synth.methods.coevol import Sample, evolve

TABLE_7 = {
    "positive": ["You are an optimistic person who embodies a mindset that looks for the best in every situation, "
                 "maintains a positive attitude, and embraces challenges as opportunities for growth and success.",
                 "In your opinion, the above response accurately answers the instruction and the input. Please state "
                 "reasons why the response is accurate if it is used for supervised fine-tuning."],
    "critical": ["You are a critical person who tends to view things through critical thinking and provide feedback "
                 "for improvement or identify areas of concern.",
                 "In your opinion, the above response does not accurately answer the instruction and the input. Please "
                 "offer suggestions on how to improve the response if it is used for supervised fine-tuning."],
    "second round": ["### Review from others:", "Above is another review from others, please evaluate the "
                     "plausibility of each point according to the given instruction and input."],
}
TABLE_8 = {
    "advisor": ["You are an experienced advisor who possesses a high level of expertise in summarizing and giving advice.",
                "Below is an instruction that describes a task, paired with an input that provides further context.",
                "The following is a discussion about the given request and response by two reviewers.",
                "### Reviewer 1:", "### Reviewer 2:",
                "Extract and summarize credible ideas from the above dialogue and rewrite them into no more than 3 "
                "writing suggestions for improving the given response. Directly output these suggestions in separate "
                "lines without any foreword or explanation."],
    "editor": ["You are a professional editor who possesses a high level of expertise in refining and improving writing content.",
               "### Writing Suggestions:", "### Previous Response:",
               "Referring to the above writing suggestions (MUST ignore suggestions beyond your capabilities), modify "
               "the previous response and make sure that it appropriately completes the request.", "### Response:"],
}
TABLE_9 = ["You are a helpful and precise assistant for checking the quality of the response.",
           "[The Start of Assistant 1's Response]", "[The End of Assistant 1's Response]",
           "[The Start of Assistant 2's Response]", "[The End of Assistant 2's Response]", "[System]",
           "We would like to request your comparison of the performance of two AI assistants in response to the user "
           "request displayed above.",
           "Please compare the helpfulness, relevance, accuracy, and level of detail of their responses.",
           "Please first output a single line containing a name indicating whose response is better, <assistant 1> "
           "or <assistant 2> or <equal>. In the subsequent line, please provide a comprehensive explanation of your "
           "comparison, avoiding any potential bias and ensuring that the order in which the responses were presented "
           "does not affect your judgment."]


def _sent_prompts():
    sample = Sample("Name a color.", "Think of the sky.", "Blue.")
    replies = {"judge": "<equal>", "editor": "Sky blue.", "advisor": "1. Say why."}
    _, sent = drive(evolve(sample, max_rounds=1), lambda chat: replies.get(agent_of(list(chat.messages)), "review"))
    return sent


def _text(chat):
    return "\n".join(m["content"] for m in chat.messages)


def test_table_6_sample_templates():
    assert Sample("I", "In", "R").render() == "### Instruction:\nI\n\n### Input:\nIn\n\n### Response:\nR"
    assert Sample("I", "", "R").render() == "### Instruction:\nI\n\n### Response:\nR"


def test_table_7_debaters():
    sent = _sent_prompts()
    positive_first, critical_first, positive_second, critical_second = sent[:4]
    for quote in TABLE_7["positive"]:
        assert quote in _text(positive_first)
    for quote in TABLE_7["critical"]:
        assert quote in _text(critical_first)
    for quote in TABLE_7["second round"]:
        assert quote in positive_second.messages[-1]["content"] and quote in critical_second.messages[-1]["content"]
    # role-play prompts are system messages (Appendix A.2)
    assert all(chat.messages[0]["role"] == "system" for chat in sent)


def test_table_8_advisor_and_editor():
    sent = _sent_prompts()
    advisor, editor = sent[4], sent[5]
    for quote in TABLE_8["advisor"]:
        assert quote in _text(advisor)
    for quote in TABLE_8["editor"]:
        assert quote in _text(editor)
    assert editor.messages[-1]["content"].endswith("### Response:\n")


def test_table_9_judge_in_both_orders():
    judges = _sent_prompts()[6:]
    for judge in judges:
        for quote in TABLE_9:
            assert quote in _text(judge)
    assert judges[0].messages[-1]["content"] != judges[1].messages[-1]["content"]


def test_prompts_live_in_one_module():
    assert prompts.JUDGE_ROLE == TABLE_9[0]
