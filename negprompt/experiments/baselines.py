"""The baselines an experiment runs beside NegPrompt: LoCoOp (trained), GL-MCM scores, NegLabel, CSP,
AdaNeg and TANL.

Each function takes the :class:`~negprompt.experiments.Experiment` and fills in its results, so that
the experiment's own steps stay short: `train_locoop` after stage 1, `add_zero_shot_baselines`
before evaluation, `evidence_record` when the run directory is written.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from negprompt.local import supports_local
from negprompt.locoop import LOCOOP_LAMBDA, default_top_k, extract_local_features
from negprompt.prompts import PromptConfig
from negprompt.train import TrainResult, train_prompts

from .methods import adaneg_method, add_local_scores, csp_method, neglabel_method, tanl_method

if TYPE_CHECKING:
    from .experiment import Experiment

log = logging.getLogger("negprompt.experiments")


def train_summary(result: TrainResult) -> dict:
    """A training result's record for ``config.json`` (without the checkpoint path)."""
    summary = result.summary()
    summary.pop("checkpoint", None)
    return summary


def train_locoop(exp: Experiment, names: list[str], views: list, labels, common: dict) -> None:
    """LoCoOp: stage 1 again with the OOD regularisation on the training images' local features.

    Sets ``exp.locoop`` and, once complete, the ``locoop`` method. Skipped (logged) without a ViT or
    with several feature views.
    """
    assert exp.features is not None and exp.data is not None and exp.backbone is not None
    if not exp.config.training.locoop or not supports_local(exp.backbone):
        return
    if exp.config.training.n_views != 1:
        log.info("LoCoOp skipped: it trains on one feature view (n_views = %d)", exp.config.training.n_views)
        return
    train = exp.features.train[0]
    files = [exp.data.train.root / p for p in train.paths]
    local = extract_local_features(
        exp.backbone, files, cache_dir=exp.config.cache_path(), progress=exp.progress
    )
    config = dataclasses.replace(exp.config.train_config(1), locoop_weight=LOCOOP_LAMBDA)
    log.info("LoCoOp: λ = %g, K = %s, local features %s", LOCOOP_LAMBDA,
             config.locoop_top_k or default_top_k(len(names)), tuple(local.shape))  # fmt: skip
    folder = None if exp.work_dir is None else exp.work_dir / "checkpoints" / "locoop"
    exp.locoop = train_prompts(
        exp.backbone, names, views[:1], labels, config, prompt_config=PromptConfig(n_neg=exp.config.training.n_neg),
        checkpoint_dir=folder, local_features=local, **common,
    )  # fmt: skip
    if exp.locoop.completed:
        exp._add_learned("locoop", exp.locoop)


def add_zero_shot_baselines(exp: Experiment) -> None:
    """GL-MCM scores of the zero-shot, CoOp and LoCoOp prompts, and the NegLabel, CSP, AdaNeg and
    TANL methods, as configured."""
    assert exp.features is not None and exp.data is not None and exp.backbone is not None
    c, feats = exp.config, exp.features
    local = [
        exp.methods[m]
        for m in ("zeroshot", "coop", "locoop")
        if m in exp.methods and exp.methods[m].local_scores is None
    ]
    if c.evaluation.local_scores and local and supports_local(exp.backbone):
        val = exp.validation_set()  # its scores are recorded for detection thresholds
        also = " and the ID validation images" if val is not None else ""
        log.info("GL-MCM: local features of %d test sets%s", 1 + len(feats.ood), also)
        sets = [feats.id_test, *feats.ood, *([val] if val is not None else [])]
        add_local_scores(
            local, exp.backbone, sets, temperature=c.evaluation.temperature, progress=exp.progress
        )
    elif c.evaluation.local_scores and local:
        log.info("GL-MCM skipped: %s has no ViT image tower with a CLS token", c.backbone.model)
    if c.evaluation.neglabel and "neglabel" not in exp.methods:
        exp.methods["neglabel"] = neglabel_method(
            exp.backbone, exp.data.class_names, exp.methods["zeroshot"], n_neg=c.evaluation.neglabel_n_neg,
            groups=c.evaluation.neglabel_groups, seed=c.seed, cache_dir=c.cache_path(), wordnet_dir=c.evaluation.wordnet_dir,
            progress=exp.progress,
        )  # fmt: skip
    if c.evaluation.csp and "csp" not in exp.methods:
        exp.methods["csp"] = csp_method(
            exp.backbone, exp.data.class_names, fraction=c.evaluation.csp_fraction, groups=c.evaluation.neglabel_groups,
            seed=c.seed, cache_dir=c.cache_path(), wordnet_dir=c.evaluation.wordnet_dir, progress=exp.progress,
        )  # fmt: skip
    if c.evaluation.adaneg and "adaneg" not in exp.methods:
        from negprompt.adaneg import AdaNegConfig

        e = c.evaluation
        config = AdaNegConfig(memory=e.adaneg_memory, groups=e.adaneg_groups, batch_size=e.adaneg_batch_size)
        exp.methods["adaneg"] = adaneg_method(exp.methods[e.adaneg_pool], config, stream=e.adaneg_stream,
                                              stream_seed=e.stream_seed, seed=c.seed, progress=exp.progress)  # fmt: skip
        log.info("AdaNeg on %s's labels, adapting on the test stream (%s, seed %d): %s", e.adaneg_pool,
                 e.adaneg_stream, e.stream_seed, config)  # fmt: skip
        if e.adaneg_coop:
            if "coop" not in exp.methods:
                raise ValueError("adaneg_coop needs CoOp's prompts: train stage 1 before evaluating")
            exp.methods["adaneg_coop"] = adaneg_method(
                exp.methods[e.adaneg_pool], config, stream=e.adaneg_stream, stream_seed=e.stream_seed, seed=c.seed,
                progress=exp.progress, prompts=exp.methods["coop"],
            )  # fmt: skip
            log.info("AdaNeg on %s's labels with CoOp's learned ID prompts", e.adaneg_pool)
    if c.evaluation.tanl and "tanl" not in exp.methods:
        from negprompt.tanl import TANLConfig

        e = c.evaluation
        config = TANLConfig(labels=e.tanl_labels, memory=e.tanl_memory, gamma=e.tanl_gamma, alpha=e.tanl_alpha,
                            batch_size=e.tanl_batch_size)  # fmt: skip
        exp.methods["tanl"] = tanl_method(
            exp.backbone, exp.data.class_names, exp.methods["zeroshot"], config, stream=e.tanl_stream, stream_seed=e.stream_seed, seed=c.seed,
            cache_dir=c.cache_path(), wordnet_dir=e.wordnet_dir, progress=exp.progress,
        )  # fmt: skip
        log.info(
            "TANL over WordNet, adapting on the test stream (%s, seed %d): %s",
            e.tanl_stream,
            e.stream_seed,
            config,
        )


def evidence_record(exp: Experiment) -> dict:
    """The patch grid and the negative labels, for explaining per-image decisions (``config.json``)."""
    out: dict = {}
    if any(m.local_scores for m in exp.methods.values()) and exp.backbone is not None:
        out["local_grid"] = int(exp.backbone.model.visual.grid_size[0])
    for name in ("neglabel", "csp"):
        method = exp.methods.get(name)
        if method is not None:
            words = list(method.neg_label_words)
            out[name] = {"n_neg": len(words), "groups": method.neg_groups, "words": words}
    for name in ("adaneg", "adaneg_coop"):
        adaneg = exp.methods.get(name)
        if adaneg is not None:
            out[name] = {**(adaneg.adapt_record or {}), "adapts_on_test_stream": True}
    tanl = exp.methods.get("tanl")
    if tanl is not None:
        out["tanl"] = {**(tanl.adapt_record or {}), "adapts_on_test_stream": True}
    return out
