"""Fixtures of the command tests."""

import hashlib
import io
import tarfile

import pytest

from negprompt.miniworld import assets


@pytest.fixture
def small_twemoji(tmp_path, monkeypatch):
    """A tiny stand-in for the npm tarball, registered under the twemoji asset's name."""
    tgz = tmp_path / "twemoji.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("package/img/twitter/64/1f415.png")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"png"))
    data = tgz.read_bytes()
    real = assets.NPM["twemoji"]
    fake = assets.NpmAsset(real.name, real.package, real.version, hashlib.sha256(data).hexdigest(), len(data),
                           real.member, real.licence)  # fmt: skip
    monkeypatch.setitem(assets.NPM, "twemoji", fake)
    return tgz
