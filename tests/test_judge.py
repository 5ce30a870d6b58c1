import pytest

from hf_synth.methods.judge import compare, parse_verdict


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
    ("<assistant 2>", "garbage", 0.5, 0.5, False),          # unparsable counts for the original
    ("garbage", "garbage", None, None, False),              # nothing read: no scores
])
def test_eq4_scores_and_stop_rule(forward, reverse, s_prev, s_new, wins):
    comparison = compare(forward, reverse)
    assert (comparison.score_previous, comparison.score_edited) == (s_prev, s_new)
    assert comparison.edited_wins is wins
