import pytest

from sdgen.extract import extract
from sdgen.plan import PlannedRow

ROW = PlannedRow(0, "polite", "travel", "air", "m", 1)
TEXT = "Thank you for the smooth flight, the crew was lovely."


@pytest.mark.parametrize(
    "raw",
    [
        TEXT,
        f'"{TEXT}"',
        f"“{TEXT}”",
        f"Sure! Here is a polite message:\n\n{TEXT}",
        f"Here's a polite review about air travel:\n{TEXT}",
        f"Text: {TEXT}",
        f"**Output:** {TEXT}",
        f"Label: polite\nCategory: travel\nType: air\n{TEXT}",
        f"{TEXT}<|im_end|>",
        f"<start_of_turn>model\n{TEXT}<end_of_turn>",
        f"{TEXT}\n\nNote: this text is polite because it thanks the crew.",
        f"{TEXT}\n\nI hope this helps!",
        f"  \n{TEXT}\n  ",
        f"Sure - here's a polite message about air travel. {TEXT}",
        f"Here is a polite review: {TEXT}",
    ],
)
def test_bare_output_is_cleaned(raw):
    assert extract(raw, ROW, reasoning=False).text == TEXT


@pytest.mark.parametrize(
    "raw",
    [
        f"OUTPUT: {TEXT}\nREASONING: It thanks the crew warmly.",
        f"OUTPUT: {TEXT}\n\nREASONING: It thanks the crew warmly.\n\nOUTPUT: another one",
        f"**OUTPUT:** {TEXT}\n**REASONING:** It thanks the crew warmly.",
        f'output: "{TEXT}"\nreasoning: It thanks the crew warmly.<|im_end|>',
        f"{TEXT}\nREASONING: It thanks the crew warmly.",
    ],
)
def test_output_and_reasoning(raw):
    parsed = extract(raw, ROW, reasoning=True)
    assert parsed.text == TEXT
    assert parsed.reasoning == "It thanks the crew warmly."


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "polite",
        "<|im_end|>",
        "Sure!",
        "Here is a polite message:",
        "Sure - Here's a polite message about shopping at supermarkets.",
        "ĠThe Ġcrew Ġwas Ġlovely",  # byte-level BPE markers: a broken detokenizer
        "The ĊflightĊ was fine today",
        # degenerate decoding the 1.5B wrote when it lost the thread (politeness runs)
        "IsCouldCouldHowThankHiHelloByeCouldWhySorryPraiseThanksPleaseCouldWhatPlease I appreciate your help!",
        "WhyWouldHeyGreatQuestionBeCalledSo? Just drop me a line with the question in your email.",
        "Hello You'VeGottenAQuestionYouWantToAsk AndIWillHelpYouFindTheAnswer SoThanksAndPleaseBeNice",
        "CouldneutralneutralneutralneutralneutralneutralpolneutralimpneutralDo you have any suggestions?",
    ],
)
def test_junk_is_rejected(raw):
    assert extract(raw, ROW, reasoning=False) is None


def test_reasoning_style_needs_reasoning():
    assert extract(f"OUTPUT: {TEXT}", ROW, reasoning=True) is None
    assert extract(f"OUTPUT: {TEXT}\nREASONING: ok", ROW, reasoning=True) is None  # too short to be a reason


def test_unicode_and_multiline_texts_survive():
    text = "Merci beaucoup ! Le vol était parfait 😀\nÀ bientôt, 東京"
    assert extract(text, ROW, reasoning=False).text == text


def test_cut_off_quote_is_dropped():
    assert extract(f'"{TEXT} And then', ROW, reasoning=False).text == f"{TEXT} And then"


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't assist with that.",
    "I'm sorry, I can't help with that request.",
    "I cannot write rude messages.",
    "As an AI language model, I don't write insults.",
    "Sorry, but I am unable to create that.",
    "I am unable to provide that kind of text.",
])  # fmt: skip
def test_refusals_are_not_data(text):
    assert extract(text, ROW, reasoning=False) is None


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't make it to the meeting on Friday, could you move it?",  # a customer's real apology
    "I cannot believe you lost my suitcase again.",
])  # fmt: skip
def test_texts_that_start_like_refusals_but_are_data(text):
    assert extract(text, ROW, reasoning=False) is not None


@pytest.mark.parametrize("text", [
    "Trump is having another meltdown. #trumpisamillionairesandbillionaires",
    "#ThankYouVeryMuchForEverythingYouDoEveryDay you made my week!",
    "Why does getElementById return null, and is AbstractSingletonProxyFactoryBean to blame?",
    "The HTTPSConnectionPoolManager fails on https://example.com/SomeLongPathWithManyWordsInIt again",
    "Hahahahahaha that is the funniest thing, noooooooo",
])  # fmt: skip
def test_hashtags_identifiers_and_laughter_are_data(text):
    assert extract(text, ROW, reasoning=False) is not None


@pytest.mark.parametrize("text", [  # tuned emotion rows of stop 43, cut where they had looped for a while
    "I got the chance to meet my favorite NBA team. #happy #basketball #memories #soccer #fun #sports #soccer #fun "
    "#soccer #fun #soccer #fun #soccer #fun #soccer #fun #soccer",
    "#GreenMarchs #Unite #Hope #Justice #Inequality #Tolerance #Equality #Justice #Inequality #Tolerance #Equality "
    "#Justice #Inequality #Tolerance #Equality #Justice #Inequality",
    "Go team! " + "@team " * 12,
    "#I'mSad #MyHeartIsBroken #Lonely " + "#Sad " * 10,
])  # fmt: skip
def test_a_phrase_loop_is_degenerate_decoding(text):
    assert extract(text, ROW, reasoning=False) is None


@pytest.mark.parametrize("text", [  # real rows of emotion, movie reviews and politeness
    "@user @user @user @user @user @user to give me my keys back. They aren't for my house! #shocking",
    "Like the Tuck family themselves, this movie just goes on and on and on and on",
    "Regarding <url>, <url>, <url>, <url>, <url> and <url>, may I redirect them? Should I leave the merge tag?",
    "No no no no, that is not what I asked for.",
])  # fmt: skip
def test_real_repetition_is_data(text):
    assert extract(text, ROW, reasoning=False) is not None


def rows(k: int) -> tuple[PlannedRow, ...]:
    return tuple(PlannedRow(i, "polite", "travel", "air", "m", 1) for i in range(k))


def test_a_numbered_answer_gives_one_text_per_row():
    from sdgen.extract import extract_items

    raw = "1. Thank you for the quick refund, it made my day.\n2. Could you please resend the invoice?\n" \
          "3. **Many thanks** to the crew on flight 12, they were lovely."
    got = extract_items(raw, rows(3))
    assert [g.text for g in got] == ["Thank you for the quick refund, it made my day.",
                                     "Could you please resend the invoice?",
                                     "Many thanks to the crew on flight 12, they were lovely."]  # fmt: skip


def test_a_copied_anchor_lead_in_is_dropped_and_a_real_text_keeps_its_words():
    from sdgen.extract import extract_items

    raw = '1. A real anger text: "The team lost again. #losers"\n2. The real problem here is the text: it is late.'
    got = extract_items(raw, rows(2))
    assert [g.text for g in got] == ["The team lost again. #losers", "The real problem here is the text: it is late."]


def test_fewer_items_than_rows_leave_the_rest_missing():
    from sdgen.extract import extract_items

    got = extract_items("1. Thanks a lot for the help with my booking.\n2) Please send the tickets again, thanks.", rows(4))
    assert [g is not None for g in got] == [True, True, False, False]


def test_a_malformed_list_keeps_only_what_is_numbered_in_order():
    from sdgen.extract import extract_items

    assert extract_items("Here are some polite texts for you to use today.", rows(3)) == [None, None, None]
    got = extract_items("1. Thanks so much for the lovely stay.\n3. Skipped a number here, oops.\n4. More text here.", rows(4))
    assert [g is not None for g in got] == [True, False, False, False]  # a jump ends the list
    got = extract_items("1. ok\n2. Could you please help me with my order number?", rows(2))
    assert [g is not None for g in got] == [False, True]  # an item too short to be a text is missing


def test_items_run_together_on_one_line_are_split_where_the_numbering_goes_on():
    """The 1.5B now and then writes "... again. 2. ... 3. ..." on one line; "version 2. It" is no item mark."""
    from sdgen.extract import extract_items

    raw = "1. Why do you keep reverting my edit? Explain yourself. 2. Which version of numpy do you use here? " \
          "3. Thanks for the quick answer, it helped a lot #grateful 4. So what did you change in the lead section? " \
          "5. A fifth text that nobody asked for."
    got = extract_items(raw, rows(4))
    assert [g.text for g in got] == ["Why do you keep reverting my edit? Explain yourself.",
                                     "Which version of numpy do you use here?",
                                     "Thanks for the quick answer, it helped a lot #grateful",
                                     "So what did you change in the lead section?"]  # fmt: skip
    got = extract_items("1. I tried version 2. It failed again on my old laptop.\n2. Could you resend the invoice, please?", rows(3))
    assert [g.text if g else None for g in got] == ["I tried version 2. It failed again on my old laptop.",
                                                    "Could you resend the invoice, please?", None]  # fmt: skip


def test_duplicates_inside_one_answer_are_kept_for_dedup_to_catch():
    """The parser maps items to rows; the dedup index drops the second copy like any duplicate (test_curation)."""
    from sdgen.extract import extract_items

    got = extract_items("1. Thank you for your patience with us.\n2. Thank you for your patience with us.", rows(2))
    assert got[0].text == got[1].text


def test_a_single_row_takes_the_whole_answer():
    from sdgen.extract import extract_items

    (only,) = extract_items("Thank you so much for the upgrade, it was a lovely surprise.", rows(1), numbered=False)
    assert only.text.startswith("Thank you")
    (item,) = extract_items("1. Thank you so much for the upgrade, it was a lovely surprise.", rows(1))
    assert item.text.startswith("Thank you")  # a single-row request in a numbered run keeps the numbering


def test_control_characters_are_dropped():
    """A NUL (which a random tiny model wrote, and Python 3.10's csv cannot write) or an escape is never text."""
    parsed = extract("Fine\x00 service,\x1b thanks!\tReally.", ROW, reasoning=False)
    assert parsed is not None and parsed.text == "Fine service, thanks!\tReally."
