"""The project's set-up files stay in step with each other."""

import re
from pathlib import Path

import pytest
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


def _debian_pairs(script: str) -> dict[str, str]:
    text = (ROOT / "scripts" / script).read_text()
    return dict(re.findall(r"^\s+([a-z0-9-]+):(/\S+)", text, re.M))


def test_the_scripts_install_the_debian_files_the_package_reads():
    """test.sh: every asset of mini-world v2; demo.sh: those v2's benchmark folders are drawn with."""
    from negprompt.miniworld import assets

    for script, keys in (("test.sh", assets.DEBIAN), ("demo.sh", assets.BENCHMARK_DEBIAN)):
        pairs = _debian_pairs(script)
        for key in keys:
            a = assets.DEBIAN[key]
            assert pairs.get(a.package) == a.path, f"{script} does not install {a.package} ({a.path})"
    assert "wordnet-base" not in _debian_pairs("demo.sh")


@pytest.mark.parametrize(
    "args, v1",
    [([], False), (["--fast"], False), (["--world", "v2"], False), (["--world", "v1"], True),
     (["--fast", "--world=v1"], True), (["--full"], True), (["--cifar", "10"], True)],
)  # fmt: skip
def test_demo_sh_installs_v2s_packages_unless_the_demo_is_v1(tmp_path, args, v1):
    """demo.sh, run with stand-ins for env.sh, debian.sh and the CLI, calls debian.sh only for v2."""
    import shutil
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    for name, body in (("env.sh", "exit 0"), ("debian.sh", 'echo debian "$1" >> calls')):
        (tmp_path / "scripts" / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "negprompt").write_text('#!/usr/bin/env bash\necho "cli $*" >> calls\n')
    for f in (*(tmp_path / "scripts").iterdir(), tmp_path / ".venv" / "bin" / "negprompt"):
        f.chmod(0o755)
    subprocess.run(["bash", str(tmp_path / "scripts" / "demo.sh"), *args], check=True, cwd=tmp_path)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[-1] == " ".join(["cli demo", *args]).rstrip()
    assert (len(calls) == 2) != v1 and (v1 or calls[0].startswith("debian mini-world v2"))
