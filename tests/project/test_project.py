"""The project's set-up files stay in step with each other."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            pkg, version = line.split("==")
            pins[pkg.lower()] = version
    return pins


def test_torch_pair_is_pinned():
    pins = _pins("requirements.txt")
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_environment_yml_installs_the_same_requirements_and_python():
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", env, re.M)
    assert re.search(r"^\s*-\s*-r requirements-dev\.txt\s*$", env, re.M)
    assert re.search(r"^\s*-\s*-e \.\s*$", env, re.M)
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert dev.splitlines()[0].strip() == "-r requirements.txt"


def test_pins_satisfy_pyproject_ranges():
    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins("requirements.txt") | _pins("requirements-dev.txt")
    declared = list(meta["dependencies"]) + [
        d for deps in meta["optional-dependencies"].values() for d in deps
    ]
    for spec in declared:
        req = Requirement(spec)
        name = req.name.lower()
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements"
        assert req.specifier.contains(pins[name]), f"pin {name}=={pins[name]} is outside {req.specifier}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    test_cmd = [c.strip() for c in commands if "scripts/test.sh" in c]
    assert test_cmd, "README must show the test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd[0].splitlines()[-1].split("&&")[-1].strip() in ci


def test_mutation_targets_cover_the_core_with_existing_files():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
    mutation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutation)
    core = {"metrics", "scores", "losses", "prompts", "features", "train", "backbone", "rundir"}
    assert core <= set(mutation.TARGETS)  # the core, and any other module given a target
    for module, (sources, tests) in mutation.TARGETS.items():
        assert all(list(ROOT.glob(s)) for s in sources), f"{module}: a source pattern matches nothing"
        assert all((ROOT / t).is_file() for t in tests), f"{module}: a test file is missing"
        section = tomllib.loads(mutation.mutmut_section(module))["tool"]["mutmut"]
        assert section["only_mutate"] == sources and section["pytest_add_cli_args_test_selection"] == tests
    assert "mutmut" in _pins("requirements-dev.txt")
