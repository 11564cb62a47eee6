"""AdaNeg over a trained method's ID prompts (CoOp's; the official code runs it over LAPT's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negprompt.adaneg import AdaNegConfig, adaneg_scores, stream_order
from negprompt.evaluate import Method, evaluate
from negprompt.experiments.methods import adaneg_method
from negprompt.neglabel import group_order
from negprompt.table_rows import is_training_free, row_kind, row_label
from tests.evaluate.test_evaluate import _set
from tests.methods.test_adaneg import _inputs, _unit

CONFIG = AdaNegConfig(memory=3, groups=2, batch_size=4)


def test_the_learned_prompts_replace_the_id_text_features_and_nothing_else():
    feats, pos, neg = _inputs()
    learned = _unit(3, 0.7)  # another set of ID text features, as CoOp's prompts give
    base = Method("neglabel", pos, None, neg_labels=neg, neg_groups=2)
    coop = Method("coop", learned, None, context_tokens={"positive": [["x"]], "negative": []})
    method = adaneg_method(base, CONFIG, stream="joint", stream_seed=2, progress=False, prompts=coop)
    assert method.name == "adaneg_coop" and method.context_tokens == coop.context_tokens
    assert method.adapt_record["prompts"] == "coop" and method.adapt_record["pool"] == "neglabel"
    plain = adaneg_method(base, CONFIG, stream="joint", stream_seed=2, progress=False)
    result = evaluate([plain, method], _set("id", feats[:12].numpy(), [0, 1, 2] * 4),
                      [_set("ood", feats[12:].numpy(), [0] * 12)], ["a", "b", "c"], bootstrap=None)  # fmt: skip
    table = result.scores
    order = stream_order(24, 2)
    stream = torch.from_numpy(result.image_features.astype(np.float32))[torch.from_numpy(order)]
    want, want_pred = adaneg_scores(stream, learned, neg, CONFIG, group_perm=group_order(10, 2, 0))
    np.testing.assert_allclose(table["adaneg_coop/adaneg"].to_numpy()[order], want.numpy(), rtol=1e-12)
    assert np.array_equal(table["pred.adaneg_coop"].to_numpy()[order], want_pred.numpy())
    assert not np.allclose(table["adaneg_coop/adaneg"], table["adaneg/adaneg"])
    assert set(result.metrics["method"]) == {"adaneg", "adaneg_coop"}
    assert row_label("adaneg_coop", "adaneg") == "AdaNeg + CoOp prompts (adapts on the test stream)"
    assert row_kind("adaneg_coop") == "adapts on the test stream" and not is_training_free("adaneg_coop")


def test_prompts_of_other_classes_are_refused():
    _, pos, neg = _inputs()
    base = Method("neglabel", pos, None, neg_labels=neg, neg_groups=2)
    with pytest.raises(ValueError, match=r"the prompts of 'coop' have shape \(2, 8\).*same ID classes"):
        adaneg_method(base, CONFIG, prompts=Method("coop", pos[:2]))


def test_adaneg_coop_needs_adaneg_and_stage_one():
    from negprompt.experiments import ExperimentConfig

    with pytest.raises(
        ValueError, match=r"adaneg_coop runs AdaNeg over CoOp's prompts: it needs adaneg=True"
    ):
        ExperimentConfig.for_preset("demo", adaneg_coop=True)
