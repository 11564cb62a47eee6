"""The artists of mini-world v2: a drawing per concept, None where an artist has none."""

import numpy as np
import pytest
from PIL import Image

from negprompt.miniworld import artists, assets
from negprompt.miniworld.emoji import Concept, load_hierarchy


def test_noto_and_symbola_draw_a_dog_in_their_styles():
    dog = load_hierarchy().by_name["dog face"]
    noto, outline = artists.glyph("noto", dog), artists.glyph("symbola", dog)
    for g in noto, outline:
        assert g.shape == (artists.GLYPH, artists.GLYPH, 4) and g.dtype == np.uint8
        assert (g[..., 3] > 0).mean() > 0.2  # a real drawing, not an empty canvas
    visible = noto[..., 3] > 128
    assert noto[visible, :3].std(axis=0).max() > 30  # colour
    assert outline[outline[..., 3] > 0, :3].max() == 0  # black ink only


def test_missing_drawings_are_none_never_a_box():
    nothing = Concept("private", "G", "s", (0x10FFFD,))
    assert artists.glyph("noto", nothing) is None
    assert artists.glyph("symbola", nothing) is None
    flag = load_hierarchy().by_name["flag Japan"]
    assert artists.glyph("symbola", flag) is None  # Symbola has no sequences
    assert artists.glyph("noto", flag) is not None


def test_twemoji_reads_png_files_with_or_without_fe0f(tmp_path):
    Image.new("RGBA", (64, 64), (255, 0, 0, 255)).save(tmp_path / "2618.png")
    shamrock = Concept("shamrock", "G", "s", (0x2618, 0xFE0F))
    g = np.asarray(artists.draw_twemoji(shamrock, tmp_path))
    assert g.shape == (artists.GLYPH, artists.GLYPH, 4) and (g[..., 0] == 255).all()
    assert artists.draw_twemoji(Concept("dog", "G", "s", (0x1F415,)), tmp_path) is None


def test_unknown_artist_lists_the_valid_ones():
    with pytest.raises(ValueError, match="noto"):
        artists.glyph("picasso", load_hierarchy().concepts[0])


def test_debian_artists_cover_enough_concepts():
    h = load_hierarchy()
    assert len(artists.coverage("noto", h.concepts)) >= 1500
    assert len(artists.coverage("symbola", h.concepts)) >= 500


def test_a_damaged_png_names_the_file_and_the_command(tmp_path):
    (tmp_path / "1f415.png").write_bytes(b"not a png")
    from negprompt.miniworld.sources import MiniWorldDataError

    with pytest.raises(MiniWorldDataError, match="1f415.png is damaged.*negprompt data prepare miniworld-v2"):
        artists.draw_twemoji(Concept("dog", "G", "s", (0x1F415,)), tmp_path)


def test_a_damaged_font_says_how_to_reinstall_it(tmp_path, monkeypatch):
    from negprompt.miniworld import assets
    from negprompt.miniworld.sources import MiniWorldDataError

    bad = tmp_path / "broken.ttf"  # (a real font name would be found by Pillow in the system folders)
    bad.write_bytes(b"\0" * 100)
    monkeypatch.setitem(
        assets.DEBIAN, "symbola", assets.DebianAsset("Symbola", "fonts-symbola", str(bad), "free")
    )
    with pytest.raises(MiniWorldDataError, match="apt-get install --reinstall fonts-symbola"):
        artists.draw_symbola(Concept("watch", "G", "s", (0x231A,)))


def test_a_missing_download_stops_the_benchmark_before_its_first_picture(tmp_path, monkeypatch):
    """Writing v2's benchmark folders gets npm's drawings first (`benchmark_v2.prepare`): when that
    download fails, nothing is drawn or written, and the error names the package and the command that
    resumes it. Drawing checks every artist's source again; a stand-in drawer needs none."""
    from negprompt.miniworld import benchmark_v2
    from negprompt.miniworld.sources import MiniWorldDataError

    monkeypatch.setenv("NEGPROMPT_DATA", str(tmp_path / "empty"))
    real = assets.NPM["twemoji"]
    offline = assets.NpmAsset(real.name, real.package, real.version, real.sha256, real.size, real.member,
                              real.licence)  # fmt: skip
    monkeypatch.setitem(assets.NPM, "twemoji", offline)
    gone = (tmp_path / f"{real.package}-{real.version}.tgz").as_uri()  # the registry, unreachable
    monkeypatch.setattr(type(offline), "url", property(lambda self: gone))
    drawn = []
    monkeypatch.setitem(artists.DRAW, "noto", lambda c: drawn.append(c) or artists.draw_noto(c))
    with pytest.raises(
        MiniWorldDataError, match="emoji-datasource-twitter.*failed.*negprompt data prepare miniworld-v2"
    ):
        benchmark_v2.mini2_root(tmp_path / "data")
    assert drawn == [] and not (tmp_path / "data" / "mini2").exists()
    monkeypatch.setattr(benchmark_v2, "prepare", lambda root, progress=True: None)  # the download skipped
    with pytest.raises(MiniWorldDataError, match="twemoji.*negprompt data prepare miniworld-v2"):
        benchmark_v2.mini2_root(tmp_path / "data")  # the drawing's own check
    assert drawn == [] and not (tmp_path / "data" / "mini2").exists()
    artists.require("noto")  # a stand-in is not checked
    monkeypatch.setitem(artists.DRAW, "twemoji", lambda c: None)
    artists.require("twemoji")
