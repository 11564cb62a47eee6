"""Questions asked of a finished run: a new image scored by every method, and a what-if vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from negprompt import live
from negprompt.cli import main
from negprompt.rundir import load_run
from negprompt.scores import score_all
from negprompt.synthetic import synthetic_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("live")
    code = main(
        ["demo", "--world", "v1", "--fast", "--no-app", "--no-progress", "--out", str(base / "runs" / "demo"),
         "--data-root", str(base / "data"), "--cache-dir", str(base / "cache")]
    )  # fmt: skip
    assert code == 0
    run = load_run(base / "runs" / "demo")
    return run, live.run_backbone(run.config)


def read_only_snapshot(path):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*")}


def test_a_run_image_scores_as_the_run_stored_it(demo):
    run, backbone = demo
    for row in (0, len(run.scores) - 1):
        with Image.open(run.scores["path"].iat[row]) as img:
            frame = live.score_image(img, run, backbone)
        assert set(frame["column"]) == set(run.score_columns)  # every method, every score (GL-MCM too)
        for column, value in zip(frame["column"], frame["value"]):
            assert value == pytest.approx(run.scores[column].iat[row], rel=1e-3, abs=1e-4), column
        assert frame.attrs["feature"].shape == (run.image_features.shape[1],)


def test_parse_vocabulary():
    v = live.parse_vocabulary("cat\n\ndog => puppy\nzebra\n", ["cat", "dog", "bird"])
    assert v.names == ["cat", "puppy", "zebra"] and v.source == [0, 1, -1]
    assert v.label_map(3).tolist() == [0, 1, -1]
    for text, message in (
        ("", "empty"),
        ("cat\ncat", "appears twice"),
        ("horse => pony", "'horse' is not a class"),
        ("cat\ncat => kitty", "continued twice"),
        ("cat =>", "new name"),
    ):
        with pytest.raises(live.LiveError, match=message):
            live.parse_vocabulary(text, ["cat", "dog", "bird"])


def test_whatif_with_the_same_vocabulary_changes_nothing(demo):
    run, backbone = demo
    names = run.config["data"]["class_names"]
    before = read_only_snapshot(run.path)
    result = live.whatif(run, backbone, live.parse_vocabulary("\n".join(names), names))
    for column in [c for c in result.scores.columns if "/" in c]:
        np.testing.assert_allclose(result.scores[column], run.scores[column], rtol=1e-3, atol=2e-4)
    assert result.changed.empty
    mean = result.metrics.query("method == 'negprompt' and score == 'negprompt' and dataset == 'mean'")
    stored = run.metrics.query("method == 'negprompt' and score == 'negprompt' and dataset == 'mean'")
    assert mean["auroc"].iat[0] == pytest.approx(stored["auroc"].iat[0], abs=1e-3)
    assert read_only_snapshot(run.path) == before  # the run directory is only read


def test_whatif_renamed_and_added_classes(demo):
    run, backbone = demo
    names = run.config["data"]["class_names"]
    text = "\n".join([f"{names[0]} => tee", *names[1:], "coat"])
    vocab = live.parse_vocabulary(text, names)
    result = live.whatif(run, backbone, vocab, methods=["negprompt"])
    pos, neg = live.method_text_features(run, backbone, "negprompt", vocab.names)
    expected = score_all(["negprompt"], np.asarray(run.image_features, dtype=np.float32), pos, neg)[
        "negprompt"
    ]
    np.testing.assert_allclose(result.scores["negprompt/negprompt"], expected.numpy(), rtol=1e-4, atol=1e-6)
    assert result.scores["pred.negprompt"].max() <= len(vocab.names) - 1
    assert not result.changed.empty  # a new class "coat" pulls near-OOD coats up: some decisions change
    flips = result.changed
    assert set(flips["before"]) | set(flips["after"]) <= {"accepted", "rejected"}
    assert (flips["before"] != flips["after"]).all()


def test_a_run_without_a_model_says_so(tmp_path):
    run = load_run(synthetic_run(tmp_path / "run", image_dir=tmp_path / "img"))
    with pytest.raises(live.LiveError, match="without a model"):
        live.run_backbone(run.config)
    config = {"backbone": {"name": "negprompt-mini", "pretrained": "auto", "weights": "other-weights"}}
    with pytest.raises(live.LiveError, match="install the run's weights"):
        live.run_backbone(config)


def test_score_image_with_negative_labels(tiny_backbone):
    from types import SimpleNamespace

    import torch

    from negprompt.neglabel import neglabel_score

    gen = torch.Generator().manual_seed(0)
    d = tiny_backbone.embed_dim
    pos = torch.nn.functional.normalize(torch.randn(3, d, generator=gen), dim=-1).numpy()
    bank = torch.nn.functional.normalize(torch.randn(6, d, generator=gen), dim=-1).numpy()
    run = SimpleNamespace(
        methods=["neglabel"],
        score_columns=["neglabel/neglabel"],
        text_features={"neglabel.pos": pos},
        text_features_of=lambda m: (pos, None),
        config={"experiment": {"neglabel": {"groups": 2}}},
    )
    img = Image.new("RGB", (40, 30), (200, 30, 90))
    frame = live.score_image(img, run, tiny_backbone, label_features=bank)
    g = tiny_backbone.encode_images(tiny_backbone.preprocess(img)[None]).float()
    expected = neglabel_score(g @ torch.from_numpy(pos).T, g @ torch.from_numpy(bank).T, 2, 0.01)
    assert list(frame["column"]) == ["neglabel/neglabel"]
    assert frame["value"].iat[0] == pytest.approx(float(expected[0]), rel=1e-5)
    assert live.score_image(img, run, tiny_backbone).empty  # no label features: no NegLabel score
