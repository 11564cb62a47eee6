"""`negprompt demo`: v2's conventional benchmark by default (its choice of settings and what it prepares),
and the embedded v1 benchmark end to end with the bundled mini-CLIP, then the dashboard (v2's runs
themselves are tests/miniworld/test_benchmark_v2.py's: the tests download nothing)."""

from __future__ import annotations

import pytest
import torch

from negprompt.cli import main
from negprompt.rundir import load_run


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Data root and feature cache shared by the tests of this module (written once)."""
    root = tmp_path_factory.mktemp("demo")
    return [
        "--world",
        "v1",
        "--data-root",
        str(root / "data"),
        "--cache-dir",
        str(root / "cache"),
        "--no-progress",
    ]


def test_demo_fast_end_to_end(tmp_path, shared, capsys):
    out = tmp_path / "demo-run"
    assert main(["demo", "--fast", "--out", str(out), "--no-app", *shared]) == 0
    printed = capsys.readouterr().out
    assert "RANDOM WEIGHTS" not in printed and "demo/near-ood" in printed and "demo/far-ood" in printed
    for label in ("MCM (zero-shot)", "CoOp + MCM", "NegPrompt", "ID = positive"):
        assert label in printed
    assert f"run directory: {out}" in printed
    # the near-OOD clothing classes, hardest first, with the counts of the run's own breakdown
    hardest = printed.split("hardest OOD classes", 1)[1].split("checks:", 1)[0].strip().splitlines()[1:]
    assert len(hardest) == 4 and all("(demo/near-ood):" in line for line in hardest)
    assert {line.split(" (")[0].strip() for line in hardest} == {"coat", "shirt", "sneaker", "ankle boot"}
    run = load_run(out)
    assert run.config["kind"] == "demo" and not run.random_weights
    assert run.config["backbone"]["name"] == "negprompt-mini"
    assert run.config["backbone"]["weights"] == "miniworld-v1"
    assert run.config["data"]["class_names"] == ["t-shirt", "trouser", "pullover", "dress", "sandal", "bag"]
    assert run.config["data"]["ood"] == ["demo/near-ood", "demo/far-ood"]
    assert len(run.scores) == 384 + 256 + 300
    assert run.config["experiment"]["data"]["n_train"] == 6 * (64 - 8)
    assert [s["config"]["epochs"] for s in run.config["experiment"]["stages"]] == [10, 10]
    m = run.metrics
    assert set(m.method) == {"zeroshot", "coop", "negprompt", "locoop"}  # NegLabel: opt in for the demo
    assert "GL-MCM (zero-shot)" in printed and "LoCoOp + GL-MCM" in printed
    assert set(m.dataset) == {"demo/near-ood", "demo/far-ood", "mean"}
    # a model that sees: zero-shot accuracy far above chance (1/6), digits told apart from clothing
    zeroshot = m[(m.method == "zeroshot") & (m.dataset == "demo/far-ood")].iloc[0]
    assert zeroshot.id_acc > 0.6 and zeroshot.auroc > 0.7
    # the whole leaderboard: the training-free max-logit row is there, with intervals, and the
    # verdict against the best training-free row comes first in the results
    assert "max-logit (zero-shot)" in printed and "whole leaderboard" in printed
    first = printed.strip().splitlines()[0]
    assert first.startswith("NegPrompt") and "best training-free score, max-logit (zero-shot)" in first
    assert {"fpr95_low", "fpr95_high", "d_fpr95", "ref_fpr95"} <= set(m.columns)
    assert ((m.fpr95_low <= m.fpr95 + 1e-12) & (m.fpr95 <= m.fpr95_high + 1e-12)).all()
    assert run.config["intervals"] == {"method": "percentile", "n_resamples": 1000, "level": 0.95, "seed": 0}
    # the checks report what the default recipe does: the M = 2 negatives end identical
    checks = {c.id: c for c in run.checks}
    assert checks["negatives_collapsed"].fired and checks["negatives_collapsed"].value > 0.999
    assert not checks["random_weights"].fired
    assert "checks:" in printed and "! negative prompts collapsed" in printed


def test_demo_starts_the_dashboard_over_the_runs_folder(tmp_path, shared, monkeypatch, capsys):
    import negprompt.commands.app as app

    calls = []
    monkeypatch.setattr(app, "launch_app", lambda *a, **k: calls.append((a, k)) or 0)
    runs = tmp_path / "runs"
    assert main(["demo", "--fast", "--epochs", "1", "--runs-dir", str(runs), "--port", "8599", *shared]) == 0
    written = [p for p in runs.iterdir() if p.name.startswith("demo-fast-v1-")]
    assert len(written) == 1 and load_run(written[0]).config["kind"] == "demo"
    assert calls == [((runs, "127.0.0.1", 8599), {"block": True})]

    def missing(*args, **kwargs):  # the dashboard's extra is not installed
        raise ModuleNotFoundError("No module named 'streamlit'", name="streamlit")

    monkeypatch.setattr(app, "launch_app", missing)
    assert main(["demo", "--fast", "--epochs", "1", "--out", str(tmp_path / "x"), *shared]) == 0
    printed = capsys.readouterr().out
    assert f"negprompt app {tmp_path}" in printed and "streamlit" in printed


def test_demo_full_fails_fast_offline(tmp_path, shared, monkeypatch, capsys):
    import urllib.error

    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvd, "FashionMNIST", offline)
    args = ["demo", "--fast", "--full", "--no-app", "--out", str(tmp_path / "full"), *shared]
    assert main(args) == 2
    assert "Could not get FashionMNIST" in capsys.readouterr().err and not (tmp_path / "full").exists()


def test_demo_runs_v2s_conventional_benchmark_by_default(tmp_path, monkeypatch, capsys):
    """By default: mini-world v2's benchmark with v2's model, fewer epochs and 2 threads; --epochs and
    --threads still win; --world v1 (or --full, --cifar) is the Fashion-MNIST demo; --world v2 with a
    v1-only option is refused."""
    import negprompt.commands.demo as demo

    seen = []
    monkeypatch.setattr(
        demo, "execute", lambda config, out, args, **kw: seen.append((config, out, args.threads)) or out
    )
    runs = tmp_path / "runs"
    assert main(["demo", "--no-app", "--runs-dir", str(runs)]) == 0
    config, out, threads = seen[-1]
    assert config.data.benchmark == "mini2" and config.preset == "mini-conventional"
    assert (config.backbone.model, config.backbone.pretrained) == ("negprompt-mini2", "miniworld-v2")
    assert config.training.epochs == demo.V2_EPOCHS < 50 and out.parent == runs
    assert out.name.startswith("demo-") and "v1" not in out.name and threads == 2
    assert main(["demo", "--threads", "1", "--no-app", "--runs-dir", str(runs)]) == 0
    assert seen[-1][2] == 1
    assert main(["demo", "--world", "v2", "--epochs", "3", "--no-app", "--runs-dir", str(runs)]) == 0
    assert seen[-1][0].training.epochs == 3
    assert main(["demo", "--world", "v1", "--no-app", "--runs-dir", str(runs)]) == 0
    assert seen[-1][0].data.benchmark == "demo" and seen[-1][0].backbone.model == "negprompt-mini"
    assert seen[-1][2] == 1 and "demo-v1-" in seen[-1][1].name  # v1's default threads
    assert main(["demo", "--cifar", "10", "--no-app", "--runs-dir", str(runs)]) == 0
    assert seen[-1][0].data.benchmark == "cifar10" and seen[-1][0].backbone.model == "negprompt-mini"
    assert main(["demo", "--world", "v2", "--full", "--no-app", "--runs-dir", str(runs)]) == 2
    assert "--world v2" in capsys.readouterr().err and len(seen) == 5


def _fake_assets(tmp_path, monkeypatch, *, debian_missing=False):
    """Debian's assets as files under tmp_path (or missing), npm's cache under tmp_path."""
    from negprompt.miniworld import assets

    for name, a in assets.DEBIAN.items():
        path = tmp_path / "debian" / name
        if not debian_missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        monkeypatch.setitem(assets.DEBIAN, name, assets.DebianAsset(a.name, a.package, str(path), a.licence))
    monkeypatch.setenv("NEGPROMPT_DATA", str(tmp_path / "cache"))
    return assets


def test_a_v2_run_prepares_what_it_needs_once(small_twemoji, tmp_path, monkeypatch, capsys):
    """Complete folders: nothing is checked. Otherwise Debian's files are required (the install command
    and --world v1 in the error), and npm's Twemoji is downloaded once, then found."""
    from negprompt.commands.common import prepare_mini2
    from negprompt.miniworld import benchmark_v2

    assets = _fake_assets(tmp_path, monkeypatch)
    fake = assets.NPM["twemoji"]
    monkeypatch.setattr(type(fake), "url", property(lambda self: small_twemoji.as_uri()))
    root = str(tmp_path / "data")
    prepare_mini2(root, progress=False)
    assert "downloading npm's emoji-datasource-twitter" in capsys.readouterr().out
    assert (assets.npm_folder(fake) / "1f415.png").read_bytes() == b"png"
    prepare_mini2(root, progress=False)  # prepared: no second download
    assert "downloading" not in capsys.readouterr().out
    monkeypatch.setattr(benchmark_v2, "mini2_ready", lambda root: True)
    monkeypatch.setitem(assets.NPM, "twemoji", None)  # complete folders: not even looked at
    prepare_mini2(root, progress=False)


def test_loading_v2_data_downloads_first_as_a_notebook_does(small_twemoji, tmp_path, monkeypatch, capsys):
    """`load_data` on mini-world v2 (the library path of the notebooks, with no command before it)
    downloads npm's Twemoji before the first picture is drawn; missing Debian files stop it first with
    the install command, before any folder is written."""
    from negprompt.experiments import ExperimentConfig, load_data
    from negprompt.miniworld import benchmark_v2
    from negprompt.miniworld.sources import MiniWorldDataError

    assets = _fake_assets(tmp_path, monkeypatch)
    fake = assets.NPM["twemoji"]
    monkeypatch.setattr(type(fake), "url", property(lambda self: small_twemoji.as_uri()))
    drawn = []

    def ensure_png_tree(root, key, items, desc):  # stands in for drawing 29,640 pictures
        drawn.append((assets.npm_folder(fake) / "1f415.png").read_bytes())
        raise RuntimeError("stop after the check")

    monkeypatch.setattr(benchmark_v2, "ensure_png_tree", ensure_png_tree)
    config = ExperimentConfig.for_preset("mini-conventional", data_root=str(tmp_path / "data"))
    with pytest.raises(RuntimeError, match="stop after the check"):
        load_data(config)
    assert drawn == [b"png"] and "downloading npm's emoji-datasource-twitter" in capsys.readouterr().out
    _fake_assets(tmp_path / "other", monkeypatch, debian_missing=True)
    with pytest.raises(MiniWorldDataError, match=r"sudo apt-get install .*fonts-symbola"):
        load_data(config)
    assert len(drawn) == 1 and not (tmp_path / "data" / "mini2").exists()


def test_a_v2_run_names_what_is_missing_and_the_v1_way_out(tmp_path, monkeypatch, capsys):
    """Missing Debian files or a failed download: the command that fixes it, and v1 as the way out
    (the demo's own words for it); `negprompt run` on v2 prepares the same way, before any work."""
    from negprompt.commands.common import UserError, prepare_mini2

    root = str(tmp_path / "data")
    assets = _fake_assets(tmp_path, monkeypatch, debian_missing=True)
    with pytest.raises(UserError, match=r"sudo apt-get install .*fonts-symbola.*--benchmark mini"):
        prepare_mini2(root)
    runs = tmp_path / "runs"
    assert main(["demo", "--no-app", "--no-progress", "--runs-dir", str(runs), "--data-root", root]) == 2
    assert "negprompt demo --world v1" in capsys.readouterr().err and not runs.exists()
    assert main(["run", "mini-hard-ood", "--seed", "0", "--out", str(runs / "h"), "--data-root", root]) == 2
    assert "fonts-noto-color-emoji" in capsys.readouterr().err and not runs.exists()
    assets = _fake_assets(tmp_path, monkeypatch)
    real = assets.NPM["twemoji"]
    gone = assets.NpmAsset(real.name, real.package, real.version, real.sha256, real.size, real.member,
                           real.licence)  # fmt: skip
    monkeypatch.setitem(assets.NPM, "twemoji", gone)
    monkeypatch.setattr(type(gone), "url", property(lambda self: (tmp_path / "nowhere.tgz").as_uri()))
    with pytest.raises(UserError, match=r"downloading .* failed.*--benchmark mini"):
        prepare_mini2(root, progress=False)
