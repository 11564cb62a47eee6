"""The tests folder mirrors the package: one folder per area, no test module loose at the top."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
BEYOND_THE_PACKAGE = {"app", "notebooks", "project", "faults", "methods"}
"""Test folders of what is not one package module: the dashboard, the tutorials, the repository
itself, damaged inputs across the package, and the added OOD methods (local, locoop, neglabel)."""


def test_tests_mirror_the_package():
    package = {p.stem for p in (ROOT / "negprompt").iterdir() if not p.name.startswith("_")}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert not sorted(TESTS.glob("test_*.py")), "every test module lives in tests/<area>/"
    assert folders - package - BEYOND_THE_PACKAGE == set()
    for folder in folders:
        assert (TESTS / folder / "__init__.py").is_file(), folder
        assert list((TESTS / folder).glob("test_*.py")), f"tests/{folder} has no tests"
