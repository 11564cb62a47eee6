"""The concept hierarchy of mini-world v2 from Unicode's emoji-test.txt (Debian unicode-data)."""

import pytest

from negprompt.miniworld.emoji import Hierarchy, load_hierarchy, parse_emoji_test
from negprompt.miniworld.sources import MiniWorldDataError

SAMPLE = """\
# group: Animals & Nature
# subgroup: animal-mammal
1F415                                                  ; fully-qualified     # 🐕 E0.7 dog
1F415 1F3FD                                            ; fully-qualified     # 🐕🏽 E0.7 dog: medium skin tone
2618 FE0F                                              ; fully-qualified     # ☘️ E1.0 shamrock
2618                                                   ; unqualified         # ☘ E1.0 shamrock
# group: Component
# subgroup: skin-tone
1F3FB                                                  ; component           # 🏻 E1.0 light skin tone
1F9B0                                                  ; fully-qualified     # 🦰 E11.0 red hair
# group: Flags
# subgroup: country-flag
1F1EF 1F1F5                                            ; fully-qualified     # 🇯🇵 E0.6 flag: Japan
"""


def test_fully_qualified_without_skin_tones_or_components():
    concepts = parse_emoji_test(SAMPLE.splitlines())
    assert [c.name for c in concepts] == ["dog", "shamrock", "flag Japan"]
    dog, shamrock, flag = concepts
    assert (dog.group, dog.subgroup, dog.codepoints, dog.text, dog.key) == (
        "Animals & Nature", "animal-mammal", (0x1F415,), "🐕", "1f415")  # fmt: skip
    assert shamrock.codepoints == (0x2618, 0xFE0F) and flag.key == "1f1ef-1f1f5"
    h = Hierarchy(tuple(concepts))
    assert h.groups == ("Animals & Nature", "Flags")
    assert h.subgroups("Flags") == ("country-flag",) and h.in_subgroup("animal-mammal") == (dog, shamrock)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1F415 ; fully-qualified # 🐕 E0.7 dog\n", "before any"),
        ("# group: A\n# subgroup: b\nnot an emoji line\n", "not an emoji-test line"),
        ("# group: A\n# subgroup: b\n" + "1F415 ; fully-qualified # 🐕 E0.7 dog\n" * 2, "occurs twice"),
        ("# just a comment\n", "no fully-qualified emoji"),
    ],
)
def test_damaged_lists_are_errors_that_say_where(text, message):
    with pytest.raises(MiniWorldDataError, match=message):
        parse_emoji_test(text.splitlines(), "emoji-test.txt")


def test_a_missing_list_names_the_debian_package(tmp_path):
    with pytest.raises(MiniWorldDataError, match="apt-get install unicode-data"):
        load_hierarchy(tmp_path / "emoji-test.txt")


def test_debians_list_gives_hundreds_of_concepts_in_nine_groups():
    h = load_hierarchy()
    assert len(h.concepts) >= 500
    assert len(h.groups) == 9 and "Component" not in h.groups
    assert len(h.subgroups()) >= 90
    assert len(h.in_subgroup("animal-mammal")) >= 60
    assert "dog face" in h.by_name and not any("skin tone" in c.name for c in h.concepts)
