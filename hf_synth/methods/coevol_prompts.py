"""CoEvol's prompts, quoted from the paper (Li et al., 2024, Appendix A, Tables 6–9).

Where the paper prints one variant (a sample *with* input), samples without input get the same
prompt with the input clause dropped, as the authors' released code does. The ablation prompts of
Section 4.1 (`edit`, `advise_without_response`, `advise`) are not printed in the paper; they are the
authors' released ones. The editor's task prompt follows the released code: Table 8 also prints
`{sample}` (which repeats the previous response) before the request; the code that produced the
paper's data does not send it.
"""
from __future__ import annotations

# Table 6: structured sample construction, with and without a given input.
SAMPLE_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}"
SAMPLE_WITHOUT_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n{response}"
REQUEST_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
REQUEST_WITHOUT_INPUT = "### Instruction:\n{instruction}\n\n"

TASK_WITH_INPUT = "Below is an instruction that describes a task, paired with an input that provides further context."
TASK_WITHOUT_INPUT = "Below is an instruction that describes a task."

# Table 7: the two debaters.
POSITIVE_ROLE = ("You are an optimistic person who embodies a mindset that looks for the best in every situation, "
                 "maintains a positive attitude, and embraces challenges as opportunities for growth and success.")
CRITICAL_ROLE = ("You are a critical person who tends to view things through critical thinking and provide "
                 "feedback for improvement or identify areas of concern.")
POSITIVE_FIRST_ROUND = (
    "{sample}\n\nIn your opinion, the above response accurately answers the instruction and the input. "
    "Please state reasons why the response is accurate if it is used for supervised fine-tuning.")
CRITICAL_FIRST_ROUND = (
    "{sample}\n\nIn your opinion, the above response does not accurately answer the instruction and the input. "
    "Please offer suggestions on how to improve the response if it is used for supervised fine-tuning.")
SECOND_ROUND = (  # the same for both debaters; each is shown the other's first-round review
    "### Review from others:\n{other_review}\n\nAbove is another review from others, please evaluate the "
    "plausibility of each point according to the given instruction and input.")

# Table 8: advisor and editor.
ADVISOR_ROLE = "You are an experienced advisor who possesses a high level of expertise in summarizing and giving advice."
EDITOR_ROLE = ("You are a professional editor who possesses a high level of expertise in refining and improving "
               "writing content.")
ADVISOR_AFTER_DEBATE = (
    "{task}\n\n{sample}\n\nThe following is a discussion about the given request and response by two reviewers.\n\n"
    "### Reviewer 1:\n{positive}\n\n### Reviewer 2:\n{critical}\n\n"
    "### Reviewer 1:\n{positive_free}\n\n### Reviewer 2:\n{critical_free}\n\n"
    "Extract and summarize credible ideas from the above dialogue and rewrite them into no more than 3 writing "
    "suggestions for improving the given response. Directly output these suggestions in separate lines without "
    "any foreword or explanation.")
EDITOR_WITH_PREVIOUS = (
    "### Writing Suggestions:\n{suggestions}\n\n### Previous Response:\n{previous}\n\n{task}\n"
    "Referring to the above writing suggestions (MUST ignore suggestions beyond your capabilities), modify the "
    "previous response and make sure that it appropriately completes the request.\n\n{request}### Response:\n")

# Section 4.1 ablations (prompts from the authors' released code).
ADVISOR_WITH_RESPONSE = (
    "{task}\n\n{sample} Propose no more than 3 writing suggestions for improving the given response. "
    "Directly output these suggestions in separate lines without any foreword or explanation.")
ADVISOR_WITHOUT_RESPONSE = (
    "{task}\n\n{request}Propose no more than 3 writing suggestions for others to better complete the request. "
    "Directly output these suggestions in separate lines without any foreword or explanation.")
EDITOR_WITHOUT_PREVIOUS = (
    "### Writing Suggestions:\n{suggestions}\n\n{task}\n"
    "Referring to the above writing suggestions (MUST ignore suggestions beyond your capabilities), modify the "
    "previous response and make sure that it appropriately completes the request.\n\n{request}### Response:\n")
EDITOR_ALONE = "{task} Write a response that appropriately completes the request.\n\n{request}### Response:\n"

# Table 9: the judge, asked twice with the two responses in both orders.
JUDGE_ROLE = "You are a helpful and precise assistant for checking the quality of the response."
JUDGE = (
    "{task}\n\n{request}"
    "[The Start of Assistant 1's Response]\n{first}\n\n[The End of Assistant 1's Response]\n\n"
    "[The Start of Assistant 2's Response]\n{second}\n\n[The End of Assistant 2's Response]\n\n"
    "[System]\nWe would like to request your comparison of the performance of two AI assistants in response to "
    "the user request displayed above.\nPlease compare the helpfulness, relevance, accuracy, and level of detail "
    "of their responses.\nPlease first output a single line containing a name indicating whose response is "
    "better, <assistant 1> or <assistant 2> or <equal>. In the subsequent line, please provide a comprehensive "
    "explanation of your comparison, avoiding any potential bias and ensuring that the order in which the "
    "responses were presented does not affect your judgment.")

# Appendix B: earlier turns of a multi-turn conversation, shown as part of the instruction.
CONVERSATION_TURN = "USER: {user}\nASSISTANT: {assistant}\n"
CONVERSATION_CURRENT = "USER: {user}"
