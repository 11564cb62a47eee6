"""Fixtures of the method tests."""

from __future__ import annotations

import pytest

from tests.methods.test_neglabel import ADJS, HEADER, NOUNS


@pytest.fixture
def wordnet(tmp_path):
    """A WordNet folder with a few synthetic nouns and adjectives (`test_neglabel`'s)."""
    folder = tmp_path / "wordnet"
    folder.mkdir()
    (folder / "data.noun").write_text(HEADER + NOUNS)
    (folder / "data.adj").write_text(HEADER + ADJS)
    return folder
