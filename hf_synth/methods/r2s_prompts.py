"""Prompts of R2S (Raw documents to Synthetic dialogues). The paper publishes no prompts; these follow
its definitions: the logic flow planned first and the six dialogue logic types and five characteristics
of a multi-turn dialogue (abstract, Section 4.1), the User → Dialogue Type → Search → Find chain
(Section 4.2, Figure 2), and the evaluation metrics (Section 3.2). Field labels stay in English in every language, so one parser reads them all.
"""

# Section 4.1: the six logic types, each with what the user does and what the assistant does next.
TYPES = {
    "Question-Answer": ("the user asks a question", "answer it"),
    "Question-Question": ("the user asks a vague question", "ask back what exactly the user wants to know"),
    "Statement-Inquiry": ("the user states something", "ask for more information about it"),
    "Statement-Explanation": ("the user states a fact", "explain it or add related information"),
    "Opinion-Rebuttal": ("the user gives an opinion", "counter it with facts or present a different viewpoint"),
    "Opinion-Agreement": ("the user gives an opinion", "agree or disagree, based on facts"),
}

# Section 4.1: the five characteristics the chain of types should give the dialogue.
CHARACTERISTICS = """\
- contextual relevance: each turn relates to what came before;
- continuity: a connected exchange, not isolated questions;
- depth: the user digs deeper into a topic or follows up on the answer;
- topic transition: the user moves to another part of the document when a topic is exhausted;
- naturalness: it reads like people talking, not like a machine."""

TYPE_LIST = "\n".join(f"- {name}: {user}; the assistant should {reply}." for name, (user, reply) in TYPES.items())

LANGUAGE = ("Write the user's words and the search phrases in the language of the document, copy the Find "
            "sentences as they stand, and keep the field labels in English.")

PLANNER_ROLE = "You plan the logic flow of dialogues about documents."

# The method "first decides the logic flow of the current dialogue" (abstract; Section 4.1): the purpose
# of the dialogue and the dialogue type of every turn, before any turn is written.
PLANNER = """Plan the logic flow of a dialogue of {turns} turns between a user and an assistant about the \
document below: what the dialogue is for, and for each turn its dialogue type and what it covers. \
Answer in exactly this format:
Purpose: <what the user wants to get out of the dialogue>
Turn 1: <one of the six types listed after the document>: <what this turn covers>
... one line per turn, up to Turn {turns}

[Document]
{document}

[Dialogue types]
{types}
Choose types so that the dialogue has:
{characteristics}
{language}"""

QUESTIONER_ROLE = "You plan and write the user's side of a dialogue about a document, turn by turn."

# Figure 2's order: User, Dialogue Type, Search, Find (then the Assistant's reply, written apart). Each
# turn sees the chain so far — earlier turns' types, searches and finds — and the planned flow (§4.1).
QUESTIONER = """Plan turn {turn} of {turns} of a dialogue between a user and an assistant about the document \
below. Answer in exactly this format:
User: <what the user says, of the type this turn needs>
Dialogue Type: <one of the six types listed after the document>
Search: <key phrases for the information the assistant's reply needs, separated by ";">
Find: "<a sentence copied word for word from the document>" (one quoted sentence per piece of information)

[Document]
{document}

[Planned logic flow]
{flow}

[Dialogue so far, with its chain]
{dialogue}

[Dialogue types]
{types}
Follow the planned flow unless the dialogue so far calls for another type, so that the dialogue has:
{characteristics}
{language}"""

ANSWERER = """You are a knowledgeable assistant in a dialogue. Build your reply on these passages of a \
document, and on common knowledge where they are silent:
{find}

In this turn, {move}. Reply in the language of the dialogue, as the assistant only."""

NO_PASSAGES = "(none: the document does not cover this)"
ANY_MOVE = "reply to the user's last message naturally"

# The paper's baselines (Tables 2–4): the whole dialogue in one request.
DIRECT = """[Document]
{document}

Write a dialogue of {turns} turns between a user and an assistant about this document. Each turn is a \
line "User: ..." followed by a line "Assistant: ...". {language_dialogue}"""

COT = """[Document]
{document}

Write a dialogue of {turns} turns between a user and an assistant about this document. Think step by \
step first: under "Thoughts:", work out which facts of the document the dialogue should cover and in \
what order. Then write the dialogue: each turn is a line "User: ..." followed by a line "Assistant: ...". \
{language_dialogue}"""

LANGUAGE_DIALOGUE = "Write the dialogue in the language of the document; keep the labels User and Assistant in English."

GENERATOR_ROLE = "You turn documents into natural, knowledge-rich dialogues between a user and an assistant."

# What a fine-tuned generator (GLLM, Section 4.3) is trained to answer: the document in, the annotated
# dialogue out, in the same block format the chain writes.
GLLM = """[Document]
{document}

Turn this document into a dialogue of {turns} turns following the Chain of Dialogue logic. For each turn \
write the lines User, Dialogue Type, Search, Find (sentences copied from the document) and Assistant."""

# Section 3.2: the nine metrics, 1 (very bad) to 5 (very good); CR in percent.
EVALUATOR_ROLE = "You are a strict evaluator of dialogues built from documents."

EVALUATE = """[Document]
{document}

[Dialogue]
{dialogue}

Score this dialogue from 1 (very bad) to 5 (very good) on each measure:
For every turn:
- Info: does the user's message state the problem or viewpoint with the key information, precisely?
- UD (understanding): is the assistant's reply relevant to the user's message?
- UF (usefulness): does the reply solve the user's problem, or confirm or correct the user's viewpoint?
- FD (fidelity): does the reply use the document's facts, and use them correctly?
- FL (flexibility): where the document has no answer, does the reply handle the message correctly with common knowledge?
For the whole dialogue:
- CS (consistency): do the speakers keep to their roles without contradicting themselves?
- CO (cohesion): are the transitions, the deepening of topics and the switches between topics natural?
- IA (interactivity): do the user and the assistant express and understand emotions fittingly?
- CR (coverage rate): what percentage of the document's content does the dialogue cover (0 to 100)?

Answer in exactly this format, one line per turn, then one line for the whole dialogue:
Turn 1: Info=<score> UD=<score> UF=<score> FD=<score> FL=<score>
...
Dialogue: CS=<score> CO=<score> IA=<score> CR=<percent>%"""

