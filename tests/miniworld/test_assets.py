"""Downloads of mini-world v2's assets: resume, checksum, unpacking and the errors that say what to do."""

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from negprompt.miniworld import assets
from negprompt.miniworld.sources import MiniWorldDataError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD, honouring ``Range: bytes=N-`` unless the server is told to ignore it."""

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.headers.get("Range"))
        data, status = self.server.payload, 200
        rng = self.headers.get("Range")
        if rng and self.server.ranges:
            start = int(rng.split("=")[1].rstrip("-"))
            data, status = data[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    srv.payload, srv.requests, srv.ranges = PAYLOAD, [], True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv):
    return f"http://127.0.0.1:{srv.server_address[1]}/pkg.tgz"


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_a_broken_download_resumes_from_where_it_stopped(server, tmp_path):
    dest = tmp_path / "pkg.tgz"
    (tmp_path / "pkg.tgz.partial").write_bytes(PAYLOAD[:300_000])
    seen = []
    assets.download(_url(server), dest, SHA, len(PAYLOAD), progress=seen.append)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == ["bytes=300000-"]
    assert sum(seen) == len(PAYLOAD) - 300_000
    assert not (tmp_path / "pkg.tgz.partial").exists()


def test_a_server_that_ignores_the_range_gives_a_whole_file(server, tmp_path):
    server.ranges = False
    (tmp_path / "pkg.tgz.partial").write_bytes(PAYLOAD[:1000])
    assets.download(_url(server), tmp_path / "pkg.tgz", SHA, len(PAYLOAD))
    assert (tmp_path / "pkg.tgz").read_bytes() == PAYLOAD


def test_a_wrong_checksum_deletes_the_download_and_says_how_to_fetch_again(server, tmp_path):
    with pytest.raises(
        MiniWorldDataError, match="does not match its recorded SHA-256.*negprompt data prepare"
    ):
        assets.download(_url(server), tmp_path / "pkg.tgz", "0" * 64, len(PAYLOAD))
    assert not (tmp_path / "pkg.tgz").exists() and not (tmp_path / "pkg.tgz.partial").exists()


def test_a_network_failure_keeps_the_partial_file_and_says_resume(tmp_path):
    (tmp_path / "pkg.tgz.partial").write_bytes(b"abc")
    with pytest.raises(MiniWorldDataError, match="run `negprompt data prepare miniworld-v2` again to resume"):
        assets.download("http://127.0.0.1:9/none.tgz", tmp_path / "pkg.tgz", SHA, len(PAYLOAD))
    assert (tmp_path / "pkg.tgz.partial").read_bytes() == b"abc"


def _tarball(path, files, link=False):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("package/img/evil.png")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def _asset(tgz):
    data = tgz.read_bytes()
    return assets.NpmAsset("art", "some-pkg", "1.0.0", hashlib.sha256(data).hexdigest(), len(data),
                           "package/img", "CC0")  # fmt: skip


def test_prepare_fetches_checks_unpacks_then_works_offline(tmp_path):
    tgz = _tarball(tmp_path / "src.tgz", {"package/img/1f415.png": b"dog", "package/img/sub/x.png": b"x",
                                          "package/../../escape.png": b"no", "package/README": b"r"}, link=True)  # fmt: skip
    asset = _asset(tgz)
    root = tmp_path / "cache"
    with pytest.raises(MiniWorldDataError, match="npm some-pkg 1.0.0.*negprompt data prepare miniworld-v2"):
        assets.npm_folder(asset, root)
    folder = assets.prepare_npm(asset, root, url=tgz.as_uri())
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "1f415.png"]  # no link, no sub-folder
    assert not (tmp_path / "escape.png").exists()
    tgz.unlink()  # offline now: the prepared folder is enough
    assert assets.prepare_npm(asset, root, url="http://127.0.0.1:9/gone.tgz") == folder
    assert assets.npm_folder(asset, root) == folder


def test_a_damaged_cached_tarball_is_fetched_again(tmp_path):
    tgz = _tarball(tmp_path / "src.tgz", {"package/img/a.png": b"a"})
    asset = _asset(tgz)
    root = tmp_path / "cache"
    root.mkdir()
    (root / asset.tarball).write_bytes(b"truncated")
    folder = assets.prepare_npm(asset, root, url=tgz.as_uri())
    assert (folder / "a.png").read_bytes() == b"a"
    assert (root / asset.tarball).read_bytes() == tgz.read_bytes()


def test_a_tarball_without_the_folder_is_an_error_naming_it(tmp_path):
    tgz = _tarball(tmp_path / "src.tgz", {"package/other/a.png": b"a"})
    with pytest.raises(MiniWorldDataError, match="holds no file under package/img"):
        assets.prepare_npm(_asset(tgz), tmp_path / "cache", url=tgz.as_uri())


def test_missing_debian_files_name_the_package(tmp_path):
    a = assets.DebianAsset("font", "fonts-example", str(tmp_path / "none.ttf"), "OFL")
    with pytest.raises(MiniWorldDataError, match="apt-get install fonts-example"):
        a.require()


def test_data_root_and_licences(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGPROMPT_DATA", str(tmp_path))
    assert assets.data_root() == tmp_path / "miniworld-v2"
    assert assets.NPM["twemoji"].url.endswith("emoji-datasource-twitter-16.0.0.tgz")
    lic = assets.licences()
    assert set(lic) == set(assets.DEBIAN) | set(assets.NPM) and all(lic.values())
