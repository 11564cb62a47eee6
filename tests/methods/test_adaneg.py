"""AdaNeg against scores computed once with the official code, its stream-order input, and its errors.

The expected values below were produced by running the official postprocessor
(``TTAPromptPostprocessor_noadagap`` in ``openood/postprocessors/ttaprompt_postprocessor.py`` of
``YBZh/OpenOOD-VLM``; ``in_score='combine'``, ``samada=False``, ``random_permute=True``, θ = 0.5,
g = 0.5, λ = 0.1) on the inputs of `_inputs`, batch by batch, with a stand-in network returning these
features and the logit scale κ; keys name κ, ``memleng``, ``group_num`` and the batch size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negprompt.adaneg import AdaNegConfig, adaneg_scores, stream_order
from negprompt.neglabel import neglabel_score

EXPECTED = {
    "k20_m3_g5_b8": (
        [0, 1, 2, 1, 0, 0, 2, 1, 0, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 0],
        [
            1.1,
            1.0999267,
            1.0997889,
            1.0597551,
            0.71842009,
            0.46438661,
            0.35705101,
            0.92176515,
            0.78427887,
            0.8764689,
            0.0049961461,
            0.25233641,
            1.0992986,
            1.0998106,
            1.0999998,
            1.0980446,
            0.8382225,
            0.25084227,
            0.23272978,
            0.91210526,
            0.76375645,
            0.55097359,
            0.32476613,
            0.72817737,
        ],
    ),
    "k20_m10_g2_b5": (
        [0, 1, 2, 1, 0, 0, 2, 1, 0, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 0],
        [
            1.0999999,
            1.0998601,
            1.099475,
            0.79516894,
            0.15429057,
            0.21692784,
            0.00053308782,
            0.54968065,
            0.54032707,
            1.0808328,
            0.00062725344,
            0.046503361,
            1.0982661,
            1.0995264,
            1.0999936,
            1.0581375,
            1.0845863,
            0.050656084,
            0.00099104352,
            1.0866964,
            0.66752076,
            0.31659701,
            0.077351712,
            0.043380789,
        ],
    ),
    "k100_m3_g5_b8": (
        [0, 1, 2, 1, 0, 0, 2, 1, 0, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 0],
        [
            1.1,
            1.1,
            1.1,
            1.079995,
            0.87977755,
            0.65867084,
            0.24828626,
            0.88026559,
            0.84361118,
            0.89989895,
            7.7117214e-08,
            0.22005755,
            1.1,
            1.1,
            1.1,
            1.1,
            0.89971799,
            0.26479331,
            0.218163,
            1.0999578,
            0.47388676,
            0.63950998,
            0.3892968,
            0.30379993,
        ],
    ),
    "k30_m2_g3_b24": (
        [0, 1, 2, 1, 0, 0, 2, 1, 0, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 0],
        [
            1.0999999,
            1.0999477,
            1.0999917,
            1.0372787,
            0.91707128,
            0.41787386,
            0.32588208,
            0.76943713,
            0.67851567,
            0.48255208,
            0.00076070859,
            0.013421359,
            0.79369563,
            1.0999994,
            1.1,
            1.0998701,
            0.84740645,
            0.51643252,
            0.006263705,
            1.0774761,
            0.71634644,
            0.35997245,
            0.20796829,
            0.039963007,
        ],
    ),
}
"""(predictions, scores) of the official code, per ``k<κ>_m<memleng>_g<group_num>_b<batch>``."""


def _unit(rows: int, phase: float, d: int = 8) -> torch.Tensor:
    i = torch.arange(rows, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    x = torch.sin(1.7 * i * (j + 1) + phase) + 0.3 * torch.cos(0.9 * j * (i + 2) + phase)
    return torch.nn.functional.normalize(x, dim=1).float()


def _inputs():
    """24 test images, 3 ID classes, 11 negative labels in 8 dimensions (deterministic, no RNG)."""
    return _unit(24, 0.1), _unit(3, 1.3), _unit(11, 2.9)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_matches_the_official_code(case):
    kappa, memory, groups, batch = (int(part[1:]) for part in case.split("_"))
    feats, pos, neg = _inputs()
    kept = 11 - 11 % groups
    perm = torch.randperm(kept, generator=torch.Generator().manual_seed(0))  # torch.manual_seed(0); randperm
    config = AdaNegConfig(memory=memory, groups=groups, batch_size=batch, logit_scale=float(kappa))
    scores, preds = adaneg_scores(feats, pos, neg, config, group_perm=perm)
    want_pred, want_score = EXPECTED[case]
    assert preds.tolist() == want_pred
    np.testing.assert_allclose(scores.numpy(), want_score, rtol=2e-6, atol=2e-6)


def test_without_adaptation_it_is_the_grouped_neglabel_score():
    """g = 1 puts the thresholds at 1 and 0: no image enters a memory, so S = (1 + λ)·v(x)."""
    feats, pos, neg = _inputs()
    config = AdaNegConfig(gap=1.0, memory=3, groups=2, batch_size=5, logit_scale=20.0)
    scores, _ = adaneg_scores(feats, pos, neg, config)
    vanilla = neglabel_score(feats @ pos.T, (feats @ neg.T)[:, :10], 2, 1 / 20.0)
    np.testing.assert_allclose(scores.numpy(), 1.1 * vanilla.double().numpy(), rtol=1e-5, atol=1e-6)
    adapted, _ = adaneg_scores(
        feats, pos, neg, AdaNegConfig(memory=3, groups=2, batch_size=5, logit_scale=20.0)
    )
    assert not np.allclose(adapted.numpy(), scores.numpy(), atol=1e-3)  # the memory changes the scores


def test_the_stream_order_is_an_input():
    feats, pos, neg = _inputs()
    config = AdaNegConfig(memory=3, groups=5, batch_size=4, logit_scale=20.0)
    order = stream_order(24, seed=3)
    assert np.array_equal(order, stream_order(24, seed=3)) and sorted(order) == list(range(24))
    assert np.array_equal(stream_order(24, None), np.arange(24))
    first, _ = adaneg_scores(feats[order], pos, neg, config)
    again, _ = adaneg_scores(feats[order], pos, neg, config)
    assert torch.equal(first, again)  # deterministic given the order
    other, _ = adaneg_scores(feats[stream_order(24, seed=4)], pos, neg, config)
    back = np.empty(24)
    back[order] = first.numpy()
    other_back = np.empty(24)
    other_back[stream_order(24, seed=4)] = other.numpy()
    assert not np.allclose(back, other_back, atol=1e-4)  # another order adapts differently


def test_bad_input_names_the_setting_and_the_fix():
    feats, pos, neg = _inputs()
    with pytest.raises(ValueError, match="test stream is empty"):
        adaneg_scores(feats[:0], pos, neg)
    with pytest.raises(ValueError, match=r"fewer than the 10 memory slots per label \(adaneg_memory\)"):
        adaneg_scores(feats[:5], pos, neg, AdaNegConfig(groups=2))
    with pytest.raises(ValueError, match=r"another backbone.*encode the label bank again"):
        adaneg_scores(feats, pos, torch.nn.functional.normalize(torch.ones(11, 16), dim=1))
    with pytest.raises(ValueError, match=r"adaneg_groups must lie in \[1, 11\]"):
        adaneg_scores(feats, pos, neg, AdaNegConfig(groups=12))
    with pytest.raises(ValueError, match="permutation"):
        adaneg_scores(feats, pos, neg, AdaNegConfig(groups=5), group_perm=torch.arange(9))


def test_csp_and_adaneg_in_an_experiment(tmp_path, tiny_backbone, wordnet):
    """Both methods in metrics.csv with their labels; AdaNeg's scores are those of its recorded stream."""
    from negprompt.experiments import run_experiment
    from negprompt.rundir import load_run
    from tests.experiments.test_experiments_data import make_benchmark, small

    data = make_benchmark(tmp_path / "data", [0, 1, 2])
    config = small(data_root=data, classes=3, cache_dir=str(tmp_path / "cache"), neglabel=True, csp=True,
                   csp_fraction=0.5, adaneg=True, adaneg_pool="csp", adaneg_memory=3, adaneg_groups=2,
                   adaneg_batch_size=4, stream_seed=7, wordnet_dir=str(wordnet), neglabel_n_neg=4,
                   neglabel_groups=2, adaneg_stream="joint", adaneg_coop=True)  # fmt: skip
    run = load_run(run_experiment(config, tmp_path / "run", progress=False, backbone=tiny_backbone))
    metrics = run.metrics
    assert {"csp", "adaneg"} <= set(metrics["method"])
    assert set(metrics.loc[metrics["method"] == "adaneg", "score"]) == {"adaneg"}
    assert set(metrics.loc[metrics["method"] == "csp", "score"]) == {"csp"}
    record = run.config["experiment"]
    assert record["adaneg"]["pool"] == "csp" and record["adaneg"]["stream_seed"] == 7
    assert record["adaneg"]["stream"] == "joint"
    assert record["adaneg"]["adapts_on_test_stream"] and record["csp"]["groups"] == 2
    assert record["table_rows"]["adaneg"] == "adaneg"
    scores = run.scores
    position = scores["adaneg.stream_position"].to_numpy()
    assert sorted(position) == list(range(len(scores)))
    assert not np.array_equal(position, np.arange(len(scores)))  # shuffled, not in table order
    # the run's scores are AdaNeg's on the recorded stream (features and labels from the run directory)
    text = np.load(tmp_path / "run" / "text_features.npz")
    from negprompt.adaneg import AdaNegConfig
    from negprompt.experiments.methods import csp_method
    from negprompt.neglabel import group_order

    csp = csp_method(tiny_backbone, run.config["data"]["class_names"], fraction=0.5, groups=2, seed=0,
                     cache_dir=tmp_path / "cache", wordnet_dir=wordnet, progress=False)  # fmt: skip
    assert list(csp.neg_label_words) == record["csp"]["words"] and len(csp.neg_label_words) == 6
    np.testing.assert_allclose(csp.pos.numpy(), text["csp.pos"], atol=1e-6)
    order = np.argsort(position)
    feats = torch.from_numpy(run.image_features.astype(np.float32)[order])
    cfg = AdaNegConfig(memory=3, groups=2, batch_size=4)
    want, want_pred = adaneg_scores(feats, csp.pos, csp.neg_labels, cfg, group_perm=group_order(6, 2, 0))
    np.testing.assert_allclose(scores["adaneg/adaneg"].to_numpy()[order], want.numpy(), rtol=1e-6, atol=1e-9)
    assert np.array_equal(scores["pred.adaneg"].to_numpy()[order], want_pred.numpy())
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "AdaNeg (adapts on the test stream)" in log and "CSP (zero-shot)" in log
    assert np.allclose(text["adaneg.pos"], text["csp.pos"])
    assert np.isfinite(scores["adaneg/adaneg"]).all() and np.isfinite(scores["csp/csp"]).all()
    # AdaNeg over CoOp's learned ID prompts: the same labels and stream, CoOp's text features
    np.testing.assert_allclose(text["adaneg_coop.pos"], text["coop.pos"])
    want, _ = adaneg_scores(
        feats, torch.from_numpy(text["coop.pos"]), csp.neg_labels, cfg, group_perm=group_order(6, 2, 0)
    )
    np.testing.assert_allclose(
        scores["adaneg_coop/adaneg"].to_numpy()[order], want.numpy(), rtol=1e-6, atol=1e-9
    )
    assert record["adaneg_coop"]["prompts"] == "coop" and record["table_rows"]["adaneg_coop"] == "adaneg"
    assert "AdaNeg + CoOp prompts (adapts on the test stream)" in log


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"adaneg": True}, "AdaNeg adapts the labels of neglabel, which is off"),
        (
            {"adaneg": True, "neglabel": True, "adaneg_pool": "csp"},
            "AdaNeg adapts the labels of csp, which is off",
        ),
        ({"csp": True, "csp_fraction": 0.0}, "CSP and AdaNeg need 0 < csp_fraction <= 1"),
        ({"adaneg": True, "neglabel": True, "adaneg_memory": 1}, "CSP and AdaNeg need 0 < csp_fraction <= 1"),
    ],
)
def test_config_errors(settings, message):
    from negprompt.experiments import ExperimentConfig

    with pytest.raises(ValueError, match=message):
        ExperimentConfig.for_preset("demo", **settings)


def test_zeroshot_command_turns_them_on(image_tree, tmp_path, capsys, wordnet):
    """`negprompt zeroshot --neglabel --csp --adaneg`: both rows printed and in metrics.csv."""
    from negprompt.cli import main
    from negprompt.rundir import load_run

    out = tmp_path / "zs"
    args = ["zeroshot", "--id-dir", str(image_tree / "id"), "--ood-dir", str(image_tree / "ood"),
            "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--wordnet-dir", str(wordnet),
            "--neglabel", "--neglabel-n-neg", "4", "--neglabel-groups", "2", "--csp", "--csp-fraction", "0.5",
            "--adaneg", "--adaneg-memory", "3", "--adaneg-groups", "2", "--stream-seed", "1"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "AdaNeg (adapts on the test stream)" in printed and "CSP (zero-shot)" in printed
    run = load_run(out)
    assert {"neglabel", "csp", "adaneg"} <= set(run.metrics["method"])
    assert run.config["experiment"]["adaneg"]["stream_seed"] == 1
    # the default: one stream per OOD set, each ID image scored in each (readable as a run directory)
    assert run.config["experiment"]["adaneg"]["stream"] == "per_set"
    from negprompt.streams import per_set_column

    ood = run.config["data"]["ood"][0]
    per_set = run.scores[per_set_column("adaneg", "adaneg", ood)].to_numpy()
    is_id = (run.scores["split"] == "id").to_numpy()
    assert np.isfinite(per_set[is_id]).all() and np.isnan(per_set[~is_id]).all()


def test_an_empty_ood_set_is_refused_before_adapting():
    from negprompt.evaluate import Method, evaluate
    from negprompt.experiments.methods import adaneg_method
    from tests.evaluate.test_evaluate import _set

    feats, pos, neg = _inputs()
    base = Method("neglabel", pos, None, neg_labels=neg, neg_groups=2)
    method = adaneg_method(base, AdaNegConfig(memory=3, groups=2, batch_size=4), progress=False)
    id_set = _set("id", feats[:12].numpy(), [0, 1, 2] * 4)
    with pytest.raises(ValueError, match="set 'empty' has no images to evaluate"):
        evaluate([method], id_set, [_set("empty", np.zeros((0, 8)), [])], ["a", "b", "c"])
    result = evaluate([method], id_set, [_set("ood", feats[12:].numpy(), [0] * 12)], ["a", "b", "c"])
    assert set(result.metrics["score"]) == {"adaneg"} and len(result.scores["adaneg.stream_position"]) == 24
    with pytest.raises(ValueError, match="adaneg_groups must lie in"):
        adaneg_method(base, AdaNegConfig(groups=12))
