"""Prompt templates of ReviewInstruct's three roles (Candidate, Reviewer, Chairman).

In our own words, carrying every instruction of the authors' released prompts that shapes the output
(`utils/prompts.py` of wjx-git/Review-Instruct): an interview setting; answers judged on usefulness,
relevance, accuracy, depth and creativity; reviewers asked to criticise the answer's inadequacies and
flaws, no more (not forbidden to say what is right: the authors' own example review opens "basically
correct, however…", and the Chairman's breadth branch needs reviews that can be mostly positive);
a Chairman who asks a related-field question when the comments are mostly positive and a targeted one
when they find the answer insufficient, eliciting a concise answer without excessive specificity or
repetition; every reply within 300 words (the action prompts). Where we differ: docs/review_instruct.md.
"""

CANDIDATE_ROLE = (
    "You are the candidate in an interview. The interviewer asks questions and you give the best answer "
    "you can, as accurately as possible. Answers are judged on usefulness, relevance, accuracy, depth and "
    "creativity, and the next questions build on them."
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

REVIEWER_ROLE = ("You are {perspective}, a member of an interview panel. A candidate answers the "
                 "interviewer's questions; you judge each answer on usefulness, relevance, accuracy, depth "
                 "and creativity.")

REVIEW = """Here is the interview so far; the last turn is the candidate's answer to review.

{conversation}

From your perspective, criticise the inadequacies and flaws of that answer.{verdict}{limit}"""

# Only with direction="majority" (ours): a line the code reads to apply the majority rule.
VERDICT = """

End with one line: "Verdict: sufficient" if, despite its flaws, the answer serves the user, or \
"Verdict: insufficient" if it is incomplete, shallow or wrong."""

CHAIRMAN_ROLE = (
    "You chair an interview panel. After each answer of the candidate you read the panel's comments and ask "
    "the next question, to assess the candidate more deeply."
)

CHAIRMAN = """{conversation}
{reviews}
{direction}

Write the next question. It should elicit a concise answer, read naturally as the user's next message \
in this conversation, avoid excessive specificity, and not repeat an earlier question:
{earlier_questions}

{reply_format}{limit}"""

REPLY_WITH_DIRECTION = """Reply with three lines:
Question: the next question, written as the user would ask it
Direction: depth or breadth
Reasoning: one or two sentences on why this direction, and what the question targets"""
REPLY_QUESTION_ONLY = """Reply with one line:
Question: the next question, written as the user would ask it"""

REVIEWS = """
[The panel's comments on the latest answer]
{reviews}
"""

REVIEW_ENTRY = "Reviewer {number} ({perspective}):\n{review}\n"

DEPTH = ("move in depth: ask a targeted question on the criticisms of the latest answer, so that the "
         "conversation becomes more demanding")
BREADTH = ("move in breadth: ask a question in a related field of the conversation's topic, so that the "
           "conversation covers more ground")

# The authors' way (direction="chairman", the default): the Chairman weighs the comments itself.
DIRECTION_FROM_REVIEWS = ("Weigh the panel's comments: if most of them are positive, " + BREADTH + "; if most "
                          "find the answer insufficient or incorrect, " + DEPTH + ".")
# Ours (direction="majority"): the code counts the reviewers' verdict lines and tells the Chairman.
DIRECTION_BY_MAJORITY = {
    "depth": "Most reviewers found the answer insufficient or wrong, so " + DEPTH + ".",
    "breadth": "Most reviewers found the answer sufficient, so " + BREADTH + ".",
}
DIRECTION_SPLIT = "The reviewers are split. " + DIRECTION_FROM_REVIEWS
# The Ask-Respond ablation: no Review stage, and the Chairman does not review the answer either.
DIRECTION_WITHOUT_REVIEWS = ("There are no panel comments. Ask the next question that naturally continues "
                             "this conversation.")

WORD_LIMIT = "\n\nFinish your whole reply within {words} words."
CANDIDATE_WORD_LIMIT = " Finish each answer within {words} words."

CONVERSATION = "[Conversation so far]\n{turns}"
