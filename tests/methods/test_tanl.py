"""TANL against scores computed once with the official code, its parts against plain references, its
stream-order input, its errors, and TANL in an experiment.

The expected values below were produced by running the official postprocessor unmodified
(``ActivatedNegPostprocessor`` of ``openood/postprocessors/activated_neg_postprocessor.py`` in
``YBZh/OpenOOD-VLM``, which ``--postprocessor.name actneg`` selects; ``in_score='sum'``,
``cossim=False``, ``cluster_num=0``) on the inputs of `_inputs`, batch by batch, with a stand-in
network: ``text_features_all`` = [ID; bank], ``noise_image_features`` = the noise rows, the batch's
features as image features and the logit scale κ, after ``torch.manual_seed(0)``. Keys name κ, β
(``beta``), L (``memleng``), γ, α, g and the batch size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from negprompt.adaneg import stream_order
from negprompt.tanl import TANLConfig, activation_aware_score, noise_images, tanl_scores, variance_threshold

PRED = [0, 1, 2, 1, 0, 0, 2, 1, 0, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 0]
EXPECTED = {
    (20.0, 4, 3, 1, 0.0, 0.5, 5): [
        0.99999976, 0.99798656, 0.99702358, 0.99531436, 0.9274596, 0.28550184, 0.8386842, 0.0015935667,
        0.96712083, 0.83550572, 0.020037752, 3.1666423e-05, 0.99745768, 0.99997258, 1.0, 0.99999952,
        0.98956573, 0.98641092, 0.00038820272, 0.99885654, 0.86558485, 0.2114062, 6.9452335e-06, 0.33531582,
    ],
    (50.0, 6, 2, 2, 0.3, 0.3, 4): [
        1.0, 0.99999982, 0.99999905, 0.99999762, 0.90395004, 0.00086447806, 0.99387437, 0.67452425,
        0.99970001, 0.96018451, 4.894718e-09, 0.68063498, 0.99999028, 1.0, 0.99999809, 0.99997789,
        0.99974388, 0.99998474, 7.2324924e-10, 0.99999875, 0.99322152, 0.46317515, 1.1501507e-13, 0.32431582,
    ],
    (30.0, 5, 3, 0, 0.0, 0.5, 6): [
        0.994142, 0.99994135, 0.99975109, 0.99957305, 0.78637588, 0.011827745, 0.90074581, 6.351067e-05,
        0.99142289, 0.99997157, 1.0072422e-05, 1.6336682e-07, 0.99940884, 0.99998552, 0.99927408, 1.0,
        0.0023289428, 0.99936438, 4.8385587e-06, 0.99989009, 0.00059287436, 2.1485398e-10, 1.7382249e-08,
        1.286967e-08,
    ],
}  # fmt: skip
"""Official scores per (κ, β, L, γ, α, g, batch size); the predictions are `PRED` in every case."""


def _unit(rows: int, phase: float, d: int = 8) -> torch.Tensor:
    i = torch.arange(rows, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    x = torch.sin(1.7 * i * (j + 1) + phase) + 0.3 * torch.cos(0.9 * j * (i + 2) + phase)
    return torch.nn.functional.normalize(x, dim=1).float()


def _inputs():
    """24 test images, 3 ID classes, 12 candidate labels, 4 noise rows in 8 dimensions (no RNG)."""
    return _unit(24, 0.1), _unit(3, 1.3), _unit(12, 2.9), _unit(4, 4.7)


def _config(kappa, beta, memory, gamma, alpha, gap, batch) -> TANLConfig:
    return TANLConfig(labels=beta, memory=memory, gamma=gamma, alpha=alpha, gap=gap, batch_size=batch,
                      logit_scale=kappa)  # fmt: skip


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_matches_the_official_code(case):
    scores, preds = tanl_scores(*_inputs(), _config(*case), seed=0)
    assert preds.tolist() == PRED
    np.testing.assert_allclose(scores.numpy(), EXPECTED[case], rtol=1e-5, atol=3e-7)


def test_the_activation_aware_score_is_the_mean_of_prefix_softmaxes():
    """The logcumsumexp form equals the official loop of softmaxes over growing prefixes."""
    logits = 10 * torch.randn(6, 4 + 13, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for step in (0, 1, 2, 5, 13, 20):
        ends = (
            [i + step for i in range(4, 17, step)] if step else [17]
        )  # the official loop; γ = 0: one softmax
        shares = [logits[:, :end].softmax(dim=1)[:, :4].sum(dim=1) for end in ends]
        want = torch.stack(shares, dim=1).mean(dim=1)
        torch.testing.assert_close(activation_aware_score(logits, 4, step), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="step >= 0"):
        activation_aware_score(logits, 4, -1)


def test_the_threshold_is_the_middle_of_the_least_within_class_variance():
    def plain(x: torch.Tensor) -> float:
        grid = torch.arange(0, 1, 0.01)
        crit = []
        for th in grid:
            hi, lo = x[x >= th], x[x < th]
            if len(hi) == 0 or len(lo) == 0:
                crit.append(float("inf"))
                continue
            crit.append(
                len(lo) / len(x) * float(lo.var(unbiased=False))
                + len(hi) / len(x) * float(hi.var(unbiased=False))
            )
        best = [i for i, c in enumerate(crit) if c == min(crit)]
        return float(grid[best[len(best) // 2]])  # fmt: skip

    g = torch.Generator().manual_seed(2)
    two = torch.cat([0.1 + 0.05 * torch.rand(40, generator=g), 0.8 + 0.1 * torch.rand(60, generator=g)])
    assert variance_threshold(two) == plain(two)
    assert 0.15 <= variance_threshold(two) <= 0.8  # between the two clusters, at the middle of the tie
    for x in (torch.rand(500, generator=g), torch.rand(7, generator=g) ** 4):
        assert variance_threshold(x) == plain(x)
    assert (
        variance_threshold(torch.full((5,), 0.995)) == plain(torch.full((5,), 0.995)) == 0.5
    )  # all on one side


def test_without_confident_images_the_labels_come_from_the_starting_queues():
    """g = 1 puts the thresholds at 1 and 0: no image is confident, every batch keeps the first choice."""
    feats, pos, bank, noise = _inputs()
    config = _config(20.0, 4, 3, 1, 0.0, 1.0, 5)
    scores, _ = tanl_scores(feats, pos, bank, noise, config, seed=0)
    g = torch.Generator().manual_seed(0)
    id_rows, noise_rows = torch.randperm(3, generator=g), torch.randperm(4, generator=g)
    act = lambda x: torch.softmax(20 * x @ torch.cat([pos, bank]).T, dim=1)[:, 3:]  # noqa: E731
    metric = act(noise[noise_rows[-3:]]).mean(0) - act(pos[id_rows]).mean(0)  # L = 3 of the 4 noise rows
    chosen = torch.topk(metric, 4).indices
    want = activation_aware_score(20 * feats @ torch.cat([pos, bank[chosen]]).T, 3, 1)
    np.testing.assert_allclose(scores.numpy(), want.double().numpy(), rtol=1e-5, atol=1e-7)
    adapted, _ = tanl_scores(feats, pos, bank, noise, dataclasses.replace(config, gap=0.5), seed=0)
    assert not np.allclose(adapted.numpy(), scores.numpy(), atol=1e-3)  # the queues change the labels


def test_the_stream_order_is_an_input():
    feats, pos, bank, noise = _inputs()
    config = _config(20.0, 4, 3, 1, 0.0, 0.5, 4)
    order = stream_order(24, seed=3)
    first, _ = tanl_scores(feats[order], pos, bank, noise, config)
    again, _ = tanl_scores(feats[order], pos, bank, noise, config)
    assert torch.equal(first, again)  # deterministic given the order
    other_order = stream_order(24, seed=4)
    other, _ = tanl_scores(feats[other_order], pos, bank, noise, config)
    back, other_back = np.empty(24), np.empty(24)
    back[order], other_back[other_order] = first.numpy(), other.numpy()
    assert not np.allclose(back, other_back, atol=1e-4)  # another order adapts differently


def test_noise_images_are_seeded_and_in_the_unit_interval():
    a, b = noise_images(16, seed=1), noise_images(16, seed=1)
    assert a.shape == (15, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, noise_images(16, seed=2))
    assert a.min() >= 0 and a.max() <= 1
    assert set(a[12:].unique().tolist()) == {0.0, 1.0}  # salt and pepper


def test_bad_input_names_the_setting_and_the_fix():
    feats, pos, bank, noise = _inputs()
    small = TANLConfig(labels=4, memory=3)
    with pytest.raises(ValueError, match="test stream is empty"):
        tanl_scores(feats[:0], pos, bank, noise, small)
    with pytest.raises(
        ValueError, match=r"fewer than the 300 rows of TANL's activation queues \(tanl_memory\)"
    ):
        tanl_scores(feats, pos, bank, noise, TANLConfig(labels=4))
    wide = torch.nn.functional.normalize(torch.ones(12, 16), dim=1)
    with pytest.raises(ValueError, match=r"another backbone.*encode the label bank again"):
        tanl_scores(feats, pos, wide, noise, small)
    with pytest.raises(ValueError, match=r"tanl_labels must lie in \[1, 12\]"):
        tanl_scores(feats, pos, bank, noise, TANLConfig(labels=13, memory=3))
    with pytest.raises(ValueError, match="tanl_gamma >= 0"):
        tanl_scores(feats, pos, bank, noise, TANLConfig(labels=4, memory=3, gamma=-1))
    with pytest.raises(ValueError, match="tanl_alpha and gap in"):
        tanl_scores(feats, pos, bank, noise, TANLConfig(labels=4, memory=3, alpha=2.0))
    with pytest.raises(ValueError, match="noise-image feature"):
        tanl_scores(feats, pos, bank, noise[:0], small)


def _tanl_run(tmp_path, backbone, wordnet, **settings):
    """A finished run with TANL on the small three-class benchmark (queues of 3, batches of 4)."""
    from negprompt.experiments import run_experiment
    from negprompt.rundir import load_run
    from tests.experiments.test_experiments_data import make_benchmark, small

    data = make_benchmark(tmp_path / "data", [0, 1, 2])
    config = small(data_root=data, classes=3, cache_dir=str(tmp_path / "cache"), tanl=True, tanl_labels=3,
                   tanl_memory=3, tanl_batch_size=4, wordnet_dir=str(wordnet), **settings)  # fmt: skip
    return load_run(run_experiment(config, tmp_path / "run", progress=False, backbone=backbone))


def test_tanl_in_an_experiment(tmp_path, tiny_backbone, wordnet):
    """TANL's row in metrics.csv; its scores are those of its recorded stream over the WordNet bank."""
    from negprompt.leaderboard import leaderboard
    from negprompt.neglabel import encode_label_bank
    from negprompt.table_rows import is_training_free, row_kind
    from negprompt.wordnet import wordnet_words

    run = _tanl_run(tmp_path, tiny_backbone, wordnet, tanl_gamma=2, stream_seed=5, tanl_stream="joint")
    assert set(run.metrics.loc[run.metrics["method"] == "tanl", "score"]) == {"tanl"}
    record = run.config["experiment"]
    assert record["tanl"]["stream_seed"] == 5 and record["tanl"]["adapts_on_test_stream"]
    assert record["tanl"]["labels"] == 3 and record["tanl"]["gamma"] == 2
    assert record["table_rows"]["tanl"] == "tanl"
    assert row_kind("tanl") == "adapts on the test stream" and not is_training_free("tanl")
    board = leaderboard(run.metrics).set_index("method")
    assert board.loc["tanl", "row"] == "TANL (adapts on the test stream)"
    assert (
        board.loc["tanl", "kind"] == "adapts on the test stream"
        and not board.loc["tanl", "best_training_free"]
    )
    assert not str(run.metrics["ref_fpr95"].iloc[0]).startswith("tanl")  # never the training-free reference
    val = run.validation_scores  # thresholds for detect: only methods that score one image at a time
    assert val is not None and "zeroshot/mcm" in val.columns and "tanl/tanl" not in val.columns
    scores = run.scores
    position = scores["tanl.stream_position"].to_numpy()
    assert sorted(position) == list(range(len(scores)))
    assert not np.array_equal(position, np.arange(len(scores)))  # shuffled, not in table order
    # the run's scores are TANL's on the recorded stream: features, positives and bank rebuilt here
    text = np.load(tmp_path / "run" / "text_features.npz")
    names = {c.lower() for c in run.config["data"]["class_names"]}
    words = wordnet_words(wordnet)
    bank = np.asarray(encode_label_bank(tiny_backbone, words, cache_dir=tmp_path / "cache", progress=False))
    cand = torch.nn.functional.normalize(
        torch.from_numpy(bank[[i for i, w in enumerate(words) if w.lower() not in names]].astype(np.float32)),
        dim=-1,
    )
    assert record["tanl"]["candidates"] == len(cand)
    noise = tiny_backbone.encode_images(noise_images(tiny_backbone.image_size, seed=0)).cpu()
    order = np.argsort(position)
    feats = torch.from_numpy(run.image_features.astype(np.float32)[order])
    cfg = TANLConfig(labels=3, memory=3, gamma=2, batch_size=4)
    want, want_pred = tanl_scores(feats, torch.from_numpy(text["tanl.pos"]), cand, noise, cfg, seed=0)
    np.testing.assert_allclose(scores["tanl/tanl"].to_numpy()[order], want.numpy(), rtol=1e-5, atol=1e-7)
    assert np.array_equal(scores["pred.tanl"].to_numpy()[order], want_pred.numpy())
    assert "TANL (adapts on the test stream)" in (tmp_path / "run" / "log.txt").read_text()
    assert np.isfinite(scores["tanl/tanl"]).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tanl": True, "tanl_memory": 0}, "TANL needs tanl_labels >= 1, tanl_memory >= 1"),
        ({"tanl": True, "tanl_alpha": 1.5}, "0 <= tanl_alpha <= 1"),
        ({"tanl": True, "tanl_gamma": -1}, "tanl_gamma >= 0"),
    ],
)
def test_config_errors(settings, message):
    from negprompt.experiments import ExperimentConfig

    with pytest.raises(ValueError, match=message):
        ExperimentConfig.for_preset("demo", **settings)


def test_zeroshot_command_turns_it_on(image_tree, tmp_path, capsys, wordnet):
    """`negprompt zeroshot --tanl`: its row printed and in metrics.csv, its settings recorded."""
    from negprompt.cli import main
    from negprompt.rundir import load_run

    out = tmp_path / "zs"
    args = ["zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
            "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--wordnet-dir", str(wordnet),
            "--tanl", "--tanl-labels", "2", "--tanl-memory", "2", "--tanl-gamma", "0", "--tanl-alpha", "0.5",
            "--stream-seed", "2"]  # fmt: skip
    assert main(args) == 0
    assert "TANL (adapts on the test stream)" in capsys.readouterr().out
    run = load_run(out)
    assert "tanl" in set(run.metrics["method"])
    record = run.config["experiment"]["tanl"]
    assert (record["stream_seed"], record["labels"], record["memory"], record["gamma"], record["alpha"]) == (
        2,
        2,
        2,
        0,
        0.5,
    )


def test_an_empty_ood_set_is_refused_before_adapting(tmp_path, tiny_backbone, wordnet):
    from negprompt.evaluate import evaluate
    from negprompt.experiments.methods import tanl_method, zeroshot_method
    from tests.evaluate.test_evaluate import _set

    names = ["dog", "cat", "bird"]
    zeroshot = zeroshot_method(tiny_backbone, names)
    method = tanl_method(tiny_backbone, names, zeroshot, TANLConfig(labels=2, memory=3, batch_size=4),
                         cache_dir=tmp_path / "cache", wordnet_dir=wordnet, progress=False)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(
        torch.randn(24, tiny_backbone.embed_dim, generator=g), dim=1
    ).numpy()
    id_set = _set("id", feats[:12], [0, 1, 2] * 4)
    with pytest.raises(ValueError, match="set 'empty' has no images to evaluate"):
        evaluate([method], id_set, [_set("empty", np.zeros((0, feats.shape[1])), [])], names)
    result = evaluate([method], id_set, [_set("ood", feats[12:], [0] * 12)], names)
    assert set(result.metrics["score"]) == {"tanl"} and len(result.scores["tanl.stream_position"]) == 24
    with pytest.raises(ValueError, match=r"tanl_labels must lie in \[1, 7\]"):
        tanl_method(tiny_backbone, names, zeroshot, TANLConfig(labels=8), cache_dir=tmp_path / "cache",
                    wordnet_dir=wordnet, progress=False)  # fmt: skip


def test_tanl_streams_each_ood_set_with_the_id_images_by_default(tmp_path, tiny_backbone, wordnet):
    """The default per-set streams: each OOD set's metrics use the ID scores of that set's own stream."""
    from negprompt import metrics as M
    from negprompt.streams import per_set_column

    run = _tanl_run(tmp_path, tiny_backbone, wordnet)  # the default stream
    assert run.config["experiment"]["tanl"]["stream"] == "per_set"
    table, is_id = run.scores, (run.scores["split"] == "id").to_numpy()
    sets = list(dict.fromkeys(table.loc[~is_id, "dataset"]))
    assert sets
    for name in sets:
        id_scores = table.loc[is_id, per_set_column("tanl", "tanl", name)].to_numpy()
        assert np.isfinite(id_scores).all()
        ood = table.loc[table["dataset"].eq(name) & ~is_id, "tanl/tanl"].to_numpy()
        row = run.metrics[(run.metrics["method"] == "tanl") & (run.metrics["dataset"] == name)].iloc[0]
        assert row["auroc"] == pytest.approx(M.ood_metrics(id_scores, ood)["auroc"])
