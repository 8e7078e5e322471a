"""Cutting Claude's stream into speakable sentences."""

from agents.engine.chunker import SentenceChunker


def _feed(chunker: SentenceChunker, text: str, step: int = 3) -> list[str]:
    out = []
    for i in range(0, len(text), step):
        out += chunker.feed(text[i : i + step])
    return out + chunker.flush()


def test_sentences_come_out_as_soon_as_they_end() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Sure. We") == ["Sure."]
    assert chunker.feed(" open at nine! Any") == ["We open at nine!"]
    assert chunker.flush() == ["Any"]


def test_abbreviations_initials_and_decimals_do_not_end_sentences() -> None:
    text = "Dr. Patel sees you at 9.30 on Tuesday. J. Smith is off. Bye."
    assert _feed(SentenceChunker(), text) == ["Dr. Patel sees you at 9.30 on Tuesday.", "J. Smith is off.", "Bye."]


def test_a_long_first_sentence_is_cut_at_a_comma() -> None:
    chunker = SentenceChunker(first_min_chars=40)
    pieces = chunker.feed("Thanks for calling the clinic today, we can certainly help with that")
    assert pieces == ["Thanks for calling the clinic today,"]
    assert chunker.flush() == ["we can certainly help with that"]
