"""Prompt templates of ReviewInstruct's three roles (Candidate, Reviewer, Chairman).

The paper publishes no prompts; these are ours, written from the algorithm in `docs/review_instruct.md`.
"""

CANDIDATE_ROLE = (
    "You are a helpful, knowledgeable assistant. Answer the user's latest message accurately and "
    "thoroughly, taking the whole conversation into account."
)

# Each Reviewer speaks from its own perspective, so that reviews differ (the paper credits its
# gains to having several reviewers). `ReviewInstructTransform(perspectives=...)` replaces these.
PERSPECTIVES = (
    "a domain expert in the subject of the question, who checks whether the answer is correct, "
    "complete and as deep as an expert would expect",
    "a demanding user who asked the question, who checks whether the answer is useful, clear and "
    "answers exactly what was asked",
    "a meticulous fact checker, who verifies every claim, number, name and example in the answer "
    "and flags anything unsupported or wrong",
    "an experienced teacher, who checks whether the answer explains the reasoning behind it and "
    "would let a learner apply it to a new case",
    "a creative practitioner, who checks whether the answer considers alternatives, trade-offs and "
    "original ways to approach the question",
)

REVIEWER_ROLE = "You are {perspective}. You review answers written by an AI assistant."

REVIEW = """Review the assistant's answer to the latest question of this conversation.

{conversation}

Judge the answer from your perspective on usefulness, relevance, accuracy, depth and creativity. \
Name its concrete strengths and weaknesses, and point out anything missing, vague or wrong. \
Do not rewrite the answer.

End your review with one line: "Verdict: sufficient" if the answer fully serves the user, or \
"Verdict: insufficient" if it is incomplete, shallow or wrong."""

CHAIRMAN_ROLE = (
    "You chair a panel that grows a single question into a rich multi-turn conversation. After each "
    "answer you write the user's next question."
)

CHAIRMAN = """{conversation}
{reviews}
{direction}

Write the user's next question. It must read naturally as the user's next message in this \
conversation, ask for one focused thing, and not repeat any earlier question:
{earlier_questions}

Reply with three lines:
Question: the next question, written as the user would ask it
Direction: depth or breadth
Reasoning: one or two sentences on why this direction, and what the question targets"""

REVIEWS = """
[Reviews of the latest answer]
{reviews}
"""

REVIEW_ENTRY = "Reviewer {number} ({perspective}):\n{review}\n"

DEPTH = ("move in depth: ask a targeted follow-up that probes the weaknesses of the latest answer, "
         "so that the conversation becomes more demanding")
BREADTH = ("move in breadth: ask a related question in a neighbouring topic, so that the conversation "
           "covers more ground")

DIRECTION_BY_MAJORITY = {
    "depth": "Most reviewers found the answer insufficient or wrong, so " + DEPTH + ".",
    "breadth": "Most reviewers found the answer sufficient, so " + BREADTH + ".",
}
DIRECTION_SPLIT = ("The reviewers are split. Decide yourself: if the answer is insufficient or wrong, "
                   + DEPTH + "; if it is good, " + BREADTH + ".")
DIRECTION_WITHOUT_REVIEWS = ("Judge the latest answer yourself: if it is insufficient or wrong, "
                             + DEPTH + "; if it is good, " + BREADTH + ".")

CONVERSATION = "[Conversation so far]\n{turns}"
