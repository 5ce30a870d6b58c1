import pytest

from hf_synth.methods.judge import compare, parse_verdict
from hf_synth.protocol import Reply


@pytest.mark.parametrize("text, verdict", [
    ("<assistant 1>\nexplanation", "1"),
    ("<assistant 2>", "2"),
    ("<equal>\nboth fine", "equal"),
    ("  <Assistant 2>  \nwhy", "2"),
    ("ASSISTANT 1", "1"),
    ("assistant2", "2"),
    ("< assistant  1 >", "1"),
    ("Output: <assistant 2>\nbecause", "2"),
    ("output:assistant 1", "1"),
    ("**<assistant 2>**", "2"),
    ("\n\n<assistant 1>\n", "1"),
    ("Equal", "equal"),
])
def test_verdicts_are_parsed_tolerantly(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text", [
    None, "", "   ", "assistant 10", "<assistant 3>", "I think both are good",
    "assistant 1 is better than assistant 2",   # two verdicts on the line: ambiguous
    "I cannot decide.\n<assistant 1>",           # the verdict must be on the first line
])
def test_unparsable_verdicts_are_none(text):
    assert parse_verdict(text) is None


@pytest.mark.parametrize("forward, reverse, s_prev, s_new, wins", [
    ("<assistant 2>", "<assistant 1>", 0.0, 1.0, True),     # both orders prefer the edit
    ("<assistant 1>", "<assistant 2>", 1.0, 0.0, False),    # both prefer the original
    ("<equal>", "<equal>", 1.0, 1.0, False),                # a tie keeps the original
    ("<assistant 2>", "<assistant 2>", 0.5, 0.5, False),    # split (position bias): keep
    ("<assistant 2>", "<equal>", 0.5, 1.0, True),           # edit + tie: Eq. 4 averaged favours the edit
    ("<assistant 2>", "garbage", 0.0, 1.0, True),           # one unreadable: the other decides alone
    ("garbage", "garbage", None, None, False),              # nothing read: no scores
])
def test_eq4_scores_and_stop_rule(forward, reverse, s_prev, s_new, wins):
    comparison = compare(forward, reverse)
    assert (comparison.score_previous, comparison.score_edited) == (s_prev, s_new)
    assert comparison.edited_wins is wins


# The five kinds of judge reply, and the authors' acceptance rule restated from their released code
# (`parse_jdg` reads the first line's "assistant 1" / "assistant 2" / "equal"; `merge_jdg_res` averages
# the two orders, or takes the readable one alone; the loop keeps the edit when its score is higher).
KINDS = {"assistant 1": Reply("<assistant 1>\nThe first response is more accurate."),
         "assistant 2": Reply("<assistant 2>\nThe second response is more accurate."),
         "equal": Reply("<equal>\nBoth are fine."),
         "unreadable": Reply("Both responses have their merits.\nThe first is shorter."),
         "cut": Reply("<assistant 2> The second response explains the", finish_reason="length")}


def authors_accept(forward: str, reverse: str) -> bool:
    def parse(text):
        option = text.strip().split("\n")[0].lower()
        return [1, 0] if "assistant 1" in option else [0, 1] if "assistant 2" in option else \
            [1, 1] if "equal" in option else [-1, -1]

    sp1, sp2 = parse(forward), parse(reverse)
    if -1 in sp1 and -1 in sp2:
        return False
    if -1 in sp1 or -1 in sp2:
        sp = sp1 if -1 not in sp1 else list(reversed(sp2))
    else:
        sp = [(sp1[0] + sp2[1]) / 2, (sp1[1] + sp2[0]) / 2]
    return sp[1] > sp[0]


@pytest.mark.parametrize("forward", KINDS)
@pytest.mark.parametrize("reverse", KINDS)
def test_every_pair_of_verdicts_is_decided_as_the_authors_code_decides_it(forward, reverse):
    assert compare(KINDS[forward], KINDS[reverse]).edited_wins is authors_accept(KINDS[forward], KINDS[reverse])
