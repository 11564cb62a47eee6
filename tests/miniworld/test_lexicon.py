"""WordNet synonyms and hypernyms of concept names."""

import pytest

from negprompt.miniworld.lexicon import WordNet
from negprompt.miniworld.sources import MiniWorldDataError


@pytest.fixture(scope="module")
def wn():
    return WordNet()


def test_synonyms_and_hypernyms_of_whole_names(wn):
    taxi = wn.lookup("taxi")
    assert "cab" in taxi.synonyms and taxi.hypernyms[0] == "car"


def test_the_drawable_sense_wins_over_the_frequent_one(wn):
    assert wn.lookup("hot dog").hypernyms[0] == "sandwich"  # sense 1 is a person


def test_a_form_word_is_skipped_for_the_thing(wn):
    assert wn.lookup("dog face").lemma == "dog"
    assert wn.lookup("zzz qqq") is None


def test_missing_or_damaged_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(MiniWorldDataError, match="wordnet-base"):
        WordNet(tmp_path)
    (tmp_path / "index.noun").write_text("dog n x\n")
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(MiniWorldDataError, match="damaged"):
        WordNet(tmp_path)
