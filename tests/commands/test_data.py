"""``negprompt data prepare``: fetch and check a world's assets once, then offline."""

import time

import pytest

from negprompt.cli import main
from negprompt.miniworld import assets
from tests.conftest import run_together


def test_prepare_fetches_once_then_runs_offline(small_twemoji, tmp_path, capsys):
    root = tmp_path / "cache"
    args = ["data", "prepare", "miniworld-v2", "--root", str(root), "--no-progress"]
    assert main(args + ["--url", f"twemoji={small_twemoji.as_uri()}"]) == 0
    out = capsys.readouterr().out
    assert "miniworld-v2 ready" in out and "CC-BY 4.0" in out and "unicode-data" in out
    assert (root / "twemoji-16.0.0" / "1f415.png").read_bytes() == b"png"
    small_twemoji.unlink()
    assert main(args) == 0  # nothing to fetch: no network needed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "prepare", "miniworld-v9"], "unknown world 'miniworld-v9'; valid worlds: miniworld-v2"),
        (["data", "prepare", "miniworld-v2", "--url", "picasso=file:///x"], "expected ASSET=URL"),
        (["data"], "choose an action"),
    ],
)
def test_bad_requests_name_the_problem(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_damaged_download_is_an_error_with_the_restoring_command(small_twemoji, tmp_path, capsys):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not the tarball")
    argv = ["data", "prepare", "miniworld-v2", "--root", str(tmp_path / "c"), "--no-progress",
            "--url", f"twemoji={bad.as_uri()}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not match its recorded SHA-256" in err and "negprompt data prepare miniworld-v2" in err


def test_missing_debian_packages_are_named_with_their_install_command(monkeypatch, tmp_path, capsys):
    gone = assets.DebianAsset("Symbola font", "fonts-symbola", str(tmp_path / "none.ttf"), "free")
    monkeypatch.setitem(assets.DEBIAN, "symbola", gone)
    assert main(["data", "prepare", "miniworld-v2", "--root", str(tmp_path / "c"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fonts-symbola" in err and "sudo apt-get install fonts-symbola" in err
    assert not (tmp_path / "c").exists()  # nothing fetched before the Debian parts are there


def _prepare(asset, root, url, log, barrier) -> None:
    def progress(n):
        with open(log, "a") as f:
            f.write(f"{n}\n")
        time.sleep(0.3)  # a slow network: the other process asks while this one downloads

    barrier.wait()
    assets.prepare_npm(asset, root, url, progress=progress)


def test_two_processes_preparing_at_once_download_once(small_twemoji, tmp_path):
    args = (assets.NPM["twemoji"], tmp_path / "cache", small_twemoji.as_uri(), tmp_path / "log")
    assert run_together(_prepare, *args) == [0, 0]
    assert len((tmp_path / "log").read_text().split()) == 1  # one chunk, downloaded by one of them
    assert (assets.npm_folder(assets.NPM["twemoji"], tmp_path / "cache") / "1f415.png").read_bytes() == b"png"
