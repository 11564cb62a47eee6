"""AdaNeg's test streams: one per OOD set (the official evaluator's protocol) or one joint stream.

``per_set`` must equal running `adaneg_scores` separately on each stream [OOD set k; ID images] in its
seeded order; ``joint`` must equal one run over the whole table. Metrics and intervals of a per-set
row are measured on each stream's own ID scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negprompt import metrics as M
from negprompt.adaneg import AdaNegConfig, adaneg_scores, stream_order
from negprompt.evaluate import Method, evaluate
from negprompt.experiments.methods import adaneg_method
from negprompt.neglabel import group_order
from negprompt.streams import per_set_column
from tests.evaluate.test_evaluate import _set
from tests.methods.test_adaneg import _inputs

CONFIG = AdaNegConfig(memory=3, groups=2, batch_size=4)
NAMES = ["a", "b", "c"]


def _run(stream: str, seed: int = 5, bootstrap=None):
    feats, pos, neg = _inputs()
    base = Method("neglabel", pos, None, neg_labels=neg, neg_groups=2)
    method = adaneg_method(base, CONFIG, stream=stream, stream_seed=seed, progress=False)
    id_set = _set("id", feats[:12].numpy(), [0, 1, 2] * 4)
    oods = [_set("far", feats[12:18].numpy(), [0] * 6), _set("mini/near", feats[18:].numpy(), [0] * 6)]
    result = evaluate([method], id_set, oods, NAMES, bootstrap=bootstrap)
    return result, pos, neg


def _stream(feats, pos, neg, seed):
    """Scores, predictions and positions of one stream given in table order (seeded shuffle undone)."""
    order = stream_order(len(feats), seed)
    scores, preds = adaneg_scores(
        feats[torch.from_numpy(order)], pos, neg, CONFIG, group_perm=group_order(10, 2, 0)
    )
    out_s, out_p, position = (
        np.empty(len(order)),
        np.empty(len(order), dtype=np.int64),
        np.empty(len(order), dtype=np.int64),
    )
    out_s[order], out_p[order], position[order] = scores.numpy(), preds.numpy(), np.arange(len(order))
    return out_s, out_p, position


def test_per_set_equals_separate_streams_of_each_ood_set_with_the_id_images():
    result, pos, neg = _run("per_set")
    table, feats = result.scores, torch.from_numpy(result.image_features.astype(np.float32))
    id_rows = np.arange(12)
    id_means = np.zeros(12)
    for k, (ood, rows) in enumerate([("far", np.arange(12, 18)), ("mini/near", np.arange(18, 24))]):
        stream = np.concatenate([rows, id_rows])  # the OOD set first, then the ID set, as the official concat
        want, want_pred, want_pos = _stream(feats[torch.from_numpy(stream)], pos, neg, 5)
        np.testing.assert_allclose(table["adaneg/adaneg"].to_numpy()[rows], want[:6], rtol=1e-12)
        per_id = table[per_set_column("adaneg", "adaneg", ood)].to_numpy()
        np.testing.assert_allclose(per_id[id_rows], want[6:], rtol=1e-12)
        assert np.isnan(per_id[12:]).all()  # only ID rows belong to the per-set column
        assert np.array_equal(table["pred.adaneg"].to_numpy()[rows], want_pred[:6])
        assert np.array_equal(
            table[per_set_column("adaneg", "stream_position", ood)].to_numpy()[id_rows], want_pos[6:]
        )
        assert np.array_equal(table["adaneg.stream_position"].to_numpy()[rows], want_pos[:6])
        if k == 0:  # ID predictions and positions of the main columns: the first OOD set's stream
            assert np.array_equal(table["pred.adaneg"].to_numpy()[id_rows], want_pred[6:])
            assert np.array_equal(table["adaneg.stream_position"].to_numpy()[id_rows], want_pos[6:])
        id_means += want[6:] / 2
        row = result.metrics.query("dataset == @ood").iloc[0]
        expected = M.ood_metrics(want[6:], want[:6])
        for metric in M.METRIC_NAMES:
            assert row[metric] == pytest.approx(expected[metric])
    np.testing.assert_allclose(table["adaneg/adaneg"].to_numpy()[id_rows], id_means, rtol=1e-12)
    # the two streams adapt differently: an ID image's score depends on the OOD set streamed with it
    assert per_set_column("adaneg", "adaneg", "mini/near") == "adaneg.adaneg@mini%2Fnear"
    # the table passes the run directory's checks: a set name with "/" makes no score column of it
    from negprompt.rundir.schema import check_metric_rows, check_metrics, check_scores

    pairs = check_scores(table)
    assert pairs == [("adaneg", "adaneg")]
    check_metric_rows(check_metrics(result.metrics), pairs, ["far", "mini/near"])
    assert not np.allclose(table["adaneg.adaneg@far"][:12], table["adaneg.adaneg@mini%2Fnear"][:12])


def test_joint_is_one_stream_over_every_test_image():
    result, pos, neg = _run("joint")
    table, feats = result.scores, torch.from_numpy(result.image_features.astype(np.float32))
    want, want_pred, want_pos = _stream(feats, pos, neg, 5)
    np.testing.assert_allclose(table["adaneg/adaneg"].to_numpy(), want, rtol=1e-12)
    assert np.array_equal(table["pred.adaneg"].to_numpy(), want_pred)
    assert np.array_equal(table["adaneg.stream_position"].to_numpy(), want_pos)
    assert not [c for c in table.columns if "@" in c]
    row = result.metrics.query("dataset == 'mini/near'").iloc[0]
    assert row["auroc"] == pytest.approx(M.ood_metrics(want[:12], want[18:])["auroc"])


def test_per_set_intervals_and_paired_rows_use_each_streams_id_scores():
    from negprompt.comparison import paired_rows, row_draws, table_resamples
    from negprompt.uncertainty import Bootstrap, resampled_metrics

    boot = Bootstrap(n_resamples=50)
    result, _, _ = _run("per_set", bootstrap=boot)
    table = result.scores
    resamples = table_resamples(table, boot)
    draws = row_draws(table, "adaneg", "adaneg", resamples)
    ood = {d: table.loc[table["dataset"] == d, "adaneg/adaneg"].to_numpy() for d in ("far", "mini/near")}
    for k, d in enumerate(("far", "mini/near")):
        alone = resampled_metrics(table[per_set_column("adaneg", "adaneg", d)][:12].to_numpy(), {d: ood[d]},
                                  resamples=[resamples[0], resamples[1 + k]])  # fmt: skip
        np.testing.assert_allclose(draws[d]["auroc"], alone[d]["auroc"])
    row = result.metrics.query("dataset == 'far'").iloc[0]
    assert row["auroc_low"] <= row["auroc"] <= row["auroc_high"]
    same = paired_rows(table, ("adaneg", "adaneg"), ("adaneg", "adaneg"), boot)
    assert (same["delta"].abs() < 1e-12).all()
    assert set(same["dataset"]) == {"far", "mini/near", "mean"}


def test_the_stream_setting_is_checked_and_recorded():
    feats, pos, neg = _inputs()
    base = Method("neglabel", pos, None, neg_labels=neg, neg_groups=2)
    with pytest.raises(ValueError, match=r"adaneg_stream must be one of \('joint', 'per_set'\), got 'mixed'"):
        adaneg_method(base, CONFIG, stream="mixed")
    assert adaneg_method(base, CONFIG).adapt_record["stream"] == "per_set"
    # without OOD sets (a validation table) the ID images form one stream
    result = evaluate([adaneg_method(base, CONFIG, progress=False)], _set("id", feats[:12].numpy(), [0, 1, 2] * 4),
                      [], NAMES, bootstrap=None)  # fmt: skip
    assert np.isfinite(result.scores["adaneg/adaneg"]).all()
