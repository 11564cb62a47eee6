"""scripts/device_kit.py: assets travel compressed and land at their Debian paths, checked by SHA-256;
a damaged or missing kit is refused with the command that rebuilds it. (Downloading the wheels needs
the package registry and is not run here.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kit_module():
    spec = importlib.util.spec_from_file_location("device_kit", ROOT / "scripts" / "device_kit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def fake_debian(tmp_path):
    """A source root with one text file (compressed in the kit) and one .gz (copied as it is)."""
    src = tmp_path / "src"
    text = src / "usr/share/wordnet/data.noun"
    text.parent.mkdir(parents=True)
    text.write_bytes(b"00001740 03 n 01 entity 0 003 ~ 00001930 n 0000\n" * 500)
    gz = src / "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
    gz.parent.mkdir(parents=True)
    gz.write_bytes(bytes(range(256)) * 4)
    return src, (
        "/usr/share/wordnet/data.noun",
        "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
    )


def _pack(kit_mod, src, paths, out):
    entries = kit_mod.pack_assets(out, paths, source_root=src)
    (out / kit_mod.MANIFEST).write_text(json.dumps({"wheels": [], "assets": entries}))
    return entries


def test_assets_round_trip_to_their_paths(tmp_path, fake_debian):
    kit_mod = _kit_module()
    src, paths = fake_debian
    entries = _pack(kit_mod, src, paths, tmp_path / "kit")
    text, gz = entries
    assert text["xz"] and text["file"].endswith(".xz") and not gz["xz"]
    packed = tmp_path / "kit" / text["file"]
    assert packed.stat().st_size < text["bytes"] / 10  # the repetitive text shrinks
    assert kit_mod.unpack(tmp_path / "kit", tmp_path / "root", tmp_path / "site") == 0
    for path in paths:
        assert (tmp_path / "root" / path.lstrip("/")).read_bytes() == (src / path.lstrip("/")).read_bytes()
    assert not list((tmp_path / "root").rglob("*.part"))


def test_a_damaged_asset_is_refused_and_nothing_half_written_stays(tmp_path, fake_debian):
    kit_mod = _kit_module()
    src, paths = fake_debian
    entries = _pack(kit_mod, src, paths, tmp_path / "kit")
    gz = tmp_path / "kit" / entries[1]["file"]
    gz.write_bytes(gz.read_bytes()[:-1] + b"\x00")
    with pytest.raises(SystemExit, match="SHA-256.*pack the kit again"):
        kit_mod.unpack(tmp_path / "kit", tmp_path / "root", tmp_path / "site")
    target = tmp_path / "root" / paths[1].lstrip("/")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_missing_source_or_manifest_names_the_fix(tmp_path):
    kit_mod = _kit_module()
    with pytest.raises(SystemExit, match="missing: install its Debian package"):
        kit_mod.pack_assets(tmp_path / "kit", ("/usr/share/nothing/here.txt",), source_root=tmp_path)
    with pytest.raises(SystemExit, match="device_kit.py pack"):
        kit_mod.unpack(tmp_path / "nokit", tmp_path / "root", tmp_path / "site")


def test_the_kit_names_what_v2_pretraining_reads():
    """Every Debian file of mini-world v2's assets and of Fashion-MNIST's training split is packed;
    of the clip-art folder, the files its mapping chose (with the wheels that draw them)."""
    from negprompt.miniworld import assets, clipart, sources
    from negprompt.miniworld.emoji import load_hierarchy

    kit_mod = _kit_module()
    packed = set(kit_mod.ASSETS["base"] + kit_mod.ASSETS["fashion"])
    assert {a.path for a in assets.DEBIAN.values() if not a.folder} <= packed
    assert {f"{sources.DEBIAN_FASHION_DIR}/{n}" for n in sources._FILES["train"]} <= packed
    assert all(w.split("==")[0] in ("open_clip_torch", "ftfy", "wcwidth") for w in kit_mod.WHEELS)
    folders = [a.path for a in assets.DEBIAN.values() if a.folder]
    assert folders == [clipart.FOLDER] and "clipart" in kit_mod.PARTS["all"]
    chosen = kit_mod.clipart_paths()
    mapped = clipart.index(load_hierarchy().concepts)
    assert set(chosen) == {str(p) for files in mapped.values() for p in files} and len(chosen) < 1000
    assert all(p.startswith(clipart.FOLDER + "/") and p.endswith(".svg") for p in chosen)
    pins = dict(
        line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert f"cairosvg=={pins['cairosvg']}" in kit_mod.CLIPART_WHEELS
