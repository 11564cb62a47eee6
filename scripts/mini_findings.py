#!/usr/bin/env python
"""The mini-world studies of docs/findings.md: every run, over seeds, as one JSON file.

    python scripts/mini_findings.py --out runs/findings --json benchmarks/findings-mini.json
    python scripts/mini_findings.py --world v2 --out runs/findings-v2 --json benchmarks/findings-mini2.json

Runs (each over ``--seeds``, default 0 1 2; results are resumed from finished run directories):

* ``main``: mini-conventional (far OOD) and mini-hard-ood (near OOD) at the defaults, with the
  training-free baselines of ``--baselines`` beside the presets' methods (default: NegLabel, CSP,
  AdaNeg on one test stream per OOD set, and AdaNeg over CoOp's prompts);
* ``negatives``: mini-hard-ood (near OOD; far OOD is nearly solved at the defaults) for M = 1, 2, 4
  negative contexts and initial noise 1e-3, 0.1, 1.0 (× the context's std);
* ``temperature``: the score temperature T re-applied to the saved features of the ``main`` runs;
* ``open_vocab``: mini-open-vocab with prompts learned on 20%, 50% and 80% of the 10 classes;
* ``protocols`` (v2 only): mini-hard-ood on v2's protocols P2-P4 (P1 is the main run), each with the
  main runs' baselines.

``--world v2`` runs the same studies on mini-world v2 (`negprompt.miniworld.benchmark_v2`): the
presets read ``--benchmark mini2`` (mini-hard-ood: ``mini2-hard``, protocol P1) with v2's weights, and
open vocabulary uses the published 10%, 20% and 50% lists.

``--by-artist`` (v2) splits the OOD acceptance of the conventional runs by the artist who drew each
picture (`by_artist`), so that a score which tells ID from OOD by style rather than concept shows.

Nothing here is tuned: every run uses the presets' recipe, and the JSON records every number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from negprompt import metrics, scores
from negprompt.experiments import ExperimentConfig, run_experiment, work_dir_for
from negprompt.rundir import load_run

NEGATIVES = [(1, 1e-3), (2, 1e-3), (2, 0.1), (2, 1.0), (4, 1e-3), (4, 0.1), (4, 1.0)]
FRACTIONS = {"v1": (0.2, 0.5, 0.8), "v2": (0.1, 0.2, 0.5)}
"""Open-vocabulary fractions of each world (v2: its published lists)."""
WORLDS = {
    "v1": {
        "mini-conventional": {"benchmark": "mini"},
        "mini-hard-ood": {"benchmark": "mini-hard"},
        "mini-open-vocab": {"benchmark": "mini"},
    },
    "v2": {
        "mini-conventional": {"benchmark": "mini2"},
        "mini-hard-ood": {"benchmark": "mini2-hard"},
        "mini-open-vocab": {"benchmark": "mini2"},
    },
}
"""The benchmark of each world's presets (v2's are the presets' defaults; named so that a run says it)."""
V2_PROTOCOLS = ("P2", "P3", "P4")
"""The hard-OOD protocols of v2 beside P1 (mini-hard-ood's default there)."""
MAIN_OVERRIDES = {"epochs", "protocol"}
"""Overrides that keep a run a main run (with every baseline): shorter smoke runs, another protocol."""
TEMPERATURES = (0.01, 0.1, 1.0, 10.0)
BASELINES = ("neglabel", "csp", "adaneg", "adaneg_coop", "tanl")
"""The baselines the main runs can add (``--baselines``): NegLabel, CSP, AdaNeg (on NegLabel's labels,
one test stream per OOD set; it adapts on the test stream), AdaNeg over CoOp's learned prompts and
TANL (WordNet's labels activated by the test stream, one stream per OOD set)."""
MAIN_BASELINES = dict.fromkeys(BASELINES, True)
"""The settings that turn the baselines on (all of them by default)."""


def run(
    out: Path,
    preset: str,
    seed: int,
    device: str = "cpu",
    baselines: dict | None = None,
    world: str = "v1",
    **overrides,
) -> Path:
    """A finished run directory for ``preset`` (reused when it is already there); a main run adds the
    ``baselines`` settings (default `MAIN_BASELINES`), and a reused one must hold their rows."""
    baselines = MAIN_BASELINES if baselines is None else baselines
    name = "-".join([preset, f"s{seed}"] + [f"{k}{v}" for k, v in sorted(overrides.items()) if k != "epochs"])
    main_run = preset in ("mini-conventional", "mini-hard-ood") and not set(overrides) - MAIN_OVERRIDES
    overrides["device"] = device
    path = out / name
    if (path / "metrics.csv").exists():
        if main_run:
            methods = set(load_run(path).metrics["method"])
            missing = [m for m, on in baselines.items() if on and m not in methods]
            if missing:
                raise SystemExit(
                    f"the finished run {path} lacks the baseline(s) {missing}: delete that folder to run it again "
                    "with them, or pass another --out (or leave them out with --baselines)"
                )
        return path
    if main_run:  # every training-free baseline beside the trained methods (labels cached once)
        overrides.update(baselines)
    config = ExperimentConfig.for_preset(preset, seed=seed, **WORLDS[world].get(preset, {}), **overrides)
    return run_experiment(config, path, resume=work_dir_for(path).exists(), progress=False)


def rows(path: Path) -> list[dict]:
    """Every row of the run's metrics (each OOD set and the mean), with intervals and the trained
    rows' paired differences to the best training-free row."""
    m = load_run(path).metrics
    return json.loads(m.to_json(orient="records"))


def seed_summary(paths: dict[int, Path]) -> list[dict]:
    """mean ± sd over seeds with pooled intervals (`negprompt.experiments.seeds.summarize`)."""
    from negprompt.experiments.seeds import summarize

    runs = {seed: load_run(p) for seed, p in paths.items()}
    table = summarize({s: r.metrics for s, r in runs.items()}, {s: r.scores for s, r in runs.items()})
    return json.loads(table.to_json(orient="records"))


def negative_similarity(path: Path) -> float | None:
    """Mean cosine between the M negative prompt features of each class (None for M = 1)."""
    run_ = load_run(path)
    _, neg = run_.text_features_of("negprompt")
    if neg is None or neg.ndim != 3 or neg.shape[1] < 2:
        return None
    neg = neg / np.linalg.norm(neg, axis=-1, keepdims=True)
    sims = np.einsum("cmd,cnd->cmn", neg, neg)
    m = neg.shape[1]
    return float(sims[:, ~np.eye(m, dtype=bool)].mean())


def temperature_rows(path: Path) -> list[dict]:
    """NegPrompt and CoOp + MCM FPR95 / AUROC of a run at each temperature (the run's own features)."""
    run_ = load_run(path)
    feats = np.asarray(run_.image_features, dtype=np.float32)
    split = run_.scores["split"].to_numpy()
    dataset = run_.scores["dataset"].to_numpy()
    out = []
    for method, score in (("negprompt", "negprompt"), ("coop", "mcm")):
        pos, neg = run_.text_features_of(method)
        for t in TEMPERATURES:
            _, s = scores.predict_and_score(score, feats, pos, neg if score == "negprompt" else None, t)
            s = s[score].numpy().astype(np.float64)
            id_s = s[split == "id"]
            for ds in sorted(set(dataset[split == "ood"])):
                ood_s = s[(split == "ood") & (dataset == ds)]
                out.append({"method": method, "temperature": t, "dataset": ds,
                            "fpr95": metrics.fpr_at_tpr(id_s, ood_s), "auroc": metrics.auroc(id_s, ood_s)})  # fmt: skip
    return out


ARTIST_ROWS = (
    ("locoop", "maxlogit"),
    ("coop", "maxlogit"),
    ("negprompt", "negprompt"),
    ("zeroshot", "energy"),
)
"""The rows whose OOD acceptance `by_artist` splits by artist: the trained leaders, NegPrompt and the
best training-free score of v2's conventional benchmark."""


def by_artist(table, sets=("mini2/near-ood", "mini2/far-ood"), rows=ARTIST_ROWS, n_resamples: int = 1000):
    """Per artist (from the file name, ``<artist>-<k>.png``) and row of a v2 conventional run's scores
    table (`negprompt.rundir.load_run`'s ``scores``): the
    share of the artist's ID test pictures kept and of its OOD pictures accepted, at the row's FPR95
    threshold over all ID pictures, each with a 95% bootstrap interval (the threshold is drawn again
    in every resample). A score that tells ID from OOD by how pictures are drawn shows as unequal
    acceptance of the artists' OOD pictures."""
    from negprompt import uncertainty as U

    artist = table["path"].map(lambda s: Path(str(s)).name.split("-")[0]).to_numpy()
    is_id = (table["split"] == "id").to_numpy()
    boot = U.Bootstrap(n_resamples=n_resamples)
    id_draws = list(U.resample_indices(int(is_id.sum()), boot, 0))
    out = []
    for k, name in enumerate(sets, start=1):
        in_set = (table["dataset"] == name).to_numpy()
        if not in_set.any():
            continue
        ood_draws = list(U.resample_indices(int(in_set.sum()), boot, k))
        for method, score in rows:
            column = f"{method}/{score}"
            if column not in table:
                continue
            values = table[column].to_numpy(dtype=np.float64)
            id_s, ood_s = values[is_id], values[in_set]
            thr = metrics.threshold_at_tpr(id_s)
            thrs = np.array([metrics.threshold_at_tpr(id_s[i]) for i in id_draws])
            for a in sorted(set(artist[in_set])):
                mine_id, mine_ood = artist[is_id] == a, artist[in_set] == a
                cells = {}
                for part, s, mine, draws in (
                    ("id_kept", id_s, mine_id, id_draws),
                    ("ood_accepted", ood_s, mine_ood, ood_draws),
                ):
                    point = float(np.mean(s[mine] >= thr)) if mine.any() else float("nan")
                    resampled = [
                        np.mean(s[d][mine[d]] >= t) if mine[d].any() else np.nan for d, t in zip(draws, thrs)
                    ]
                    lo, hi = np.nanpercentile(resampled, [2.5, 97.5]) if mine.any() else (np.nan, np.nan)
                    cells[part] = [point, float(lo), float(hi)]
                out.append({"dataset": name, "method": method, "score": score, "artist": a,
                            "id_pictures": int(mine_id.sum()), "ood_pictures": int(mine_ood.sum()), **cells})  # fmt: skip
    return out


def by_artist_md(result: dict) -> list[str]:
    """The `by_artist` rows of ``result`` (seed by seed) as a Markdown table, in %."""
    rows = result.get("by_artist") or {}
    if not rows:
        return []

    def cell(v):
        return "—" if v[0] != v[0] else f"{100 * v[0]:.1f} [{100 * v[1]:.1f}, {100 * v[2]:.1f}]"

    out = ["### mini-conventional on v2: OOD pictures accepted per artist (FPR95 threshold, seed by seed)", "",
           "| seed | OOD set | row | artist | ID kept | OOD accepted |", "|---|---|---|---|---|---|"]  # fmt: skip
    for seed, entries in sorted(rows.items(), key=lambda kv: int(kv[0])):
        for r in entries:
            out.append(f"| {seed} | {r['dataset'].split('/')[-1]} | {_label(r)} | {r['artist']} "
                       f"({r['ood_pictures']}) | {cell(r['id_kept'])} | {cell(r['ood_accepted'])} |")  # fmt: skip
    return out + [""]


def tasks(seeds: list[int], parts: list[str], world: str = "v1") -> list[tuple[str, int, dict]]:
    """Every run the studies need, the defaults first, without duplicates."""
    out: list[tuple[str, int, dict]] = []
    for seed in seeds:
        if {"main", "temperature", "negatives"} & set(parts):
            out += [("mini-conventional", seed, {}), ("mini-hard-ood", seed, {})]
        if "open_vocab" in parts and world == "v1":
            out += [
                ("mini-open-vocab", seed, {"open_vocab_fraction": f}) for f in FRACTIONS[world] if f != 0.5
            ]
            out.append(("mini-open-vocab", seed, {}))
        elif "open_vocab" in parts:
            out += [("mini-open-vocab", seed, {"open_vocab_fraction": f}) for f in FRACTIONS[world]]
        if "protocols" in parts and world == "v2":
            out += [("mini-hard-ood", seed, {"protocol": p}) for p in V2_PROTOCOLS]
    if "negatives" in parts:
        for seed in seeds:
            for preset in ("mini-hard-ood",):
                out += [
                    (preset, seed, {"n_neg": m, "neg_noise": n}) for m, n in NEGATIVES if (m, n) != (2, 1e-3)
                ]
    return out


def _task(args: tuple) -> tuple[tuple, str]:
    import torch

    out, device, epochs, baselines, world, (preset, seed, overrides) = args
    torch.set_num_threads(1)
    extra = {"epochs": epochs} if epochs else {}
    path = run(Path(out), preset, seed, device=device, baselines=baselines, world=world, **overrides, **extra)
    return (preset, seed, overrides), str(path)


def choose_baselines(names: list[str]) -> dict[str, bool]:
    """The settings that turn on exactly the baselines ``names`` (`BASELINES`; AdaNeg's need NegLabel)."""
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise SystemExit(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    if {"adaneg", "adaneg_coop"} & set(names) and "neglabel" not in names:
        raise SystemExit("AdaNeg adapts NegLabel's labels: add neglabel to --baselines")
    if "adaneg_coop" in names and "adaneg" not in names:
        raise SystemExit("adaneg_coop is added beside adaneg: add adaneg to --baselines")
    return {name: name in names for name in BASELINES}


def warm_csp_banks(seeds: list[int], device: str, world: str = "v1") -> None:
    """Encode CSP's label banks once before the runs (nouns once per model, adjective phrases per seed),
    so parallel runs read them from the cache instead of each encoding ≈ 838,000 prompts."""
    from negprompt.csp import ADJ_TEMPLATES, NOUN_TEMPLATES, csp_pool, encode_ensemble
    from negprompt.experiments import Experiment
    from negprompt.wordnet import load_synsets

    config = ExperimentConfig.for_preset(
        "mini-conventional", device=device, **WORLDS[world].get("mini-conventional", {})
    )
    backbone = Experiment(config).load_backbone()
    wordnet = config.evaluation.wordnet_dir
    nouns_syn, adj_syn = load_synsets("noun", wordnet), load_synsets("adj", wordnet)
    for seed in seeds:
        nouns, phrases = csp_pool(nouns_syn, adj_syn, seed=seed)
        for words, templates in ((nouns, NOUN_TEMPLATES), (phrases, ADJ_TEMPLATES)):
            encode_ensemble(backbone, words, templates, cache_dir=config.cache_path(), progress=True)


def record(result: dict, preset: str, seed: int, overrides: dict, path: Path, parts: list[str]) -> None:
    """File one finished run under the studies it belongs to."""
    s = str(seed)
    if preset == "mini-open-vocab":
        fraction = str(overrides.get("open_vocab_fraction", 0.5))
        result.setdefault("open_vocab", {}).setdefault(fraction, {})[s] = rows(path)
        return
    if set(overrides) == {"protocol"}:
        result.setdefault("protocols", {}).setdefault(overrides["protocol"], {})[s] = rows(path)
        return
    m, noise = overrides.get("n_neg", 2), overrides.get("neg_noise", 1e-3)
    if not overrides:
        result.setdefault("main", {}).setdefault(preset, {})[s] = rows(path)
        if "temperature" in parts:
            result.setdefault("temperature", {}).setdefault(preset, {})[s] = temperature_rows(path)
    entry = {"rows": rows(path), "neg_cos": negative_similarity(path)}
    result.setdefault("negatives", {}).setdefault(preset, {}).setdefault(f"M={m} noise={noise}", {})[s] = (
        entry
    )


def _pct(row: dict, metric: str, spread: bool = True) -> str:
    """``mean ± sd [pooled interval]`` in % of one summary row (no ± for one seed)."""
    mean = row.get(f"{metric}_mean")
    if mean is None:
        return "—"
    text = f"{100 * mean:.1f}"
    if spread and row.get("seeds", 1) > 1 and row.get(f"{metric}_std") is not None:
        text += f" ± {100 * row[f'{metric}_std']:.1f}"
    if row.get(f"{metric}_low") is not None:
        text += f" [{100 * row[f'{metric}_low']:.1f}, {100 * row[f'{metric}_high']:.1f}]"
    return text


def _delta(row: dict) -> str:
    if row.get("d_fpr95") is None:
        return ""
    return f"{100 * row['d_fpr95']:+.1f} [{100 * row['d_fpr95_low']:+.1f}, {100 * row['d_fpr95_high']:+.1f}]"


def _label(row: dict) -> str:
    from negprompt.table_rows import row_kind, row_label

    kind, label = row_kind(row["method"]), row_label(row["method"], row["score"])
    return label if kind == "trained" or kind in label else f"{label} *({kind})*"


PUBLISHED_IMAGENET = (
    ("MCM", ("zeroshot", "mcm"), 42.74, 90.77),
    ("GL-MCM", ("zeroshot", "gl_mcm"), 35.59, 90.83),
    ("LoCoOp + GL-MCM", ("locoop", "gl_mcm"), 28.66, 93.52),
    ("NegLabel", ("neglabel", "neglabel"), 25.40, 94.21),
    ("NegPrompt", ("negprompt", "negprompt"), 23.01, 94.81),
    ("CSP", ("csp", "csp"), 17.51, 95.76),
)
"""Published means over iNaturalist, SUN, Places and Textures on ImageNet-1k with CLIP ViT-B/16
(FPR95 / AUROC, %; sources in docs/experiments.md), worst to best, and the row that plays each here."""


def _overlap(a: dict, b: dict, metric: str = "fpr95") -> bool:
    lo_a, hi_a, lo_b, hi_b = (a.get(f"{metric}_low"), a.get(f"{metric}_high"), b.get(f"{metric}_low"),
                              b.get(f"{metric}_high"))  # fmt: skip
    if None in (lo_a, hi_a, lo_b, hi_b):
        return False
    return max(lo_a, lo_b) <= min(hi_a, hi_b)


def _paired(worse: dict, better: dict, ref: dict | None) -> tuple[float, float, float] | None:
    """FPR95 of ``better`` minus ``worse`` with its paired interval, when one of them is the
    reference row ``ref`` and the other carries its paired difference to it (else None)."""
    if ref is None:
        return None
    for row, other, sign in ((better, worse, 1.0), (worse, better, -1.0)):
        if other is ref and row is not ref and row.get("d_fpr95") is not None:
            ends = sorted((sign * row["d_fpr95_low"], sign * row["d_fpr95_high"]))
            return sign * row["d_fpr95"], ends[0], ends[1]
    return None


def validity_md(summary: list[dict], dataset: str = "mean") -> list[str]:
    """The published ImageNet behaviour beside this world's (one preset's seed summary): each method's
    published mean and ours, then each published ordering of neighbours, agreed or not.

    An ordering "agrees" when our means are in the published order and the two intervals do not
    overlap, is "not resolved" when they overlap, and "disagrees" when our means are in the other order
    and the intervals do not overlap; when one of the two rows is the best training-free row, the
    other's paired interval to it decides instead (both rows on the same resamples). CoOp's published
    gain in ID accuracy over zero-shot is the last line.
    """
    found = {(r["method"], r["score"]): r for r in summary if r["dataset"] == dataset}
    out = ["| method | ImageNet FPR95 / AUROC (published) | here: FPR95 | here: AUROC |", "|---|---|---|---|"]
    for name, key, fpr, auroc in PUBLISHED_IMAGENET:
        r = found.get(key)
        here = (_pct(r, "fpr95"), _pct(r, "auroc")) if r else ("not run", "not run")
        out.append(f"| {name} | {fpr:.2f} / {auroc:.2f} | {here[0]} | {here[1]} |")
    refs = {r.get("ref") for r in found.values()} - {None}
    best_free = found.get(tuple(next(iter(refs)).split("/", 1))) if len(refs) == 1 else None
    if best_free is not None:  # the reference every trained row is compared with
        out.append(f"| best training-free row here: {_label(best_free)} | — | {_pct(best_free, 'fpr95')} "
                   f"| {_pct(best_free, 'auroc')} |")  # fmt: skip
    out += ["", "| published ordering (FPR95) | here | verdict |", "|---|---|---|"]
    for (worse, wk, _, _), (better, bk, _, _) in zip(PUBLISHED_IMAGENET, PUBLISHED_IMAGENET[1:]):
        a, b = found.get(wk), found.get(bk)
        if a is None or b is None:
            out.append(f"| {better} < {worse} | not run | — |")
            continue
        same = b["fpr95_mean"] < a["fpr95_mean"]
        verdict = (
            "not resolved (intervals overlap)" if _overlap(a, b) else ("agrees" if same else "disagrees")
        )
        paired = _paired(a, b, best_free)
        if paired is not None:  # one of the two is the reference: its paired interval settles more
            d, low, high = paired  # FPR95 of `better` minus `worse`
            verdict = "agrees" if high < 0 else "disagrees" if low > 0 else "not resolved"
            verdict += f" (paired Δ {100 * d:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}])"
        here = f"{better} {100 * b['fpr95_mean']:.1f} vs {worse} {100 * a['fpr95_mean']:.1f}"
        out.append(f"| {better} < {worse} | {here} | {verdict} |")
    coop, zs = found.get(("coop", "mcm")), found.get(("zeroshot", "mcm"))
    if coop is not None and zs is not None:
        up = coop["id_acc_mean"] > zs["id_acc_mean"]
        overlap = _overlap(coop, zs, "id_acc")
        verdict = "not resolved (intervals overlap)" if overlap else ("agrees" if up else "disagrees")
        out.append(
            f"| CoOp's ID accuracy > zero-shot's | {_pct(coop, 'id_acc')} vs {_pct(zs, 'id_acc')} | {verdict} |"
        )
    return out


def leaderboard_md(summary: list[dict], dataset: str = "mean") -> list[str]:
    """Every row of one dataset, best mean FPR95 first, with the trained rows' Δ to the best
    training-free row (pooled paired interval)."""
    rows = sorted((r for r in summary if r["dataset"] == dataset), key=lambda r: r["fpr95_mean"])
    out = ["| row | FPR95 | AUROC | ID acc | Δ FPR95 vs best training-free |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {_label(r)} | {_pct(r, 'fpr95')} | {_pct(r, 'auroc')} | {_pct(r, 'id_acc')} | {_delta(r)} |"
        )
    return out


def _find(summary: list[dict], method: str, score: str, dataset: str) -> dict | None:
    return next(
        (r for r in summary if (r["method"], r["score"], r["dataset"]) == (method, score, dataset)), None
    )


def protocols_md(by_overrides: dict) -> list[str]:
    """One line per hard-OOD protocol run beside the main one: the best training-free row, NegPrompt
    with its paired Δ, and the best trained row (mean over OOD sets)."""
    from negprompt.table_rows import row_kind

    lines = []
    for key in sorted(by_overrides):
        overrides = json.loads(key)
        if set(overrides) != {"protocol"}:
            continue
        rows = [r for r in by_overrides[key] if r["dataset"] == "mean"]
        ref = rows[0].get("ref") or ""
        best_free = _find(rows, *ref.split("/", 1), "mean") if "/" in ref else None
        neg = _find(rows, "negprompt", "negprompt", "mean")
        trained = [r for r in rows if row_kind(r["method"]) == "trained"]
        best = min(trained, key=lambda r: r["fpr95_mean"]) if trained else None
        cells = [
            f"{_label(best_free)}: {_pct(best_free, 'fpr95')}" if best_free else "—",
            _pct(neg, "fpr95") if neg else "—",
            _delta(neg) if neg else "—",
            f"{_label(best)}: {_pct(best, 'fpr95')}" if best else "—",
            _delta(best) if best else "—",
            _pct(neg, "id_acc") if neg else "—",
        ]
        lines.append(f"| {overrides['protocol']} | " + " | ".join(cells) + " |")
    if not lines:
        return []
    return [
        "### mini-hard-ood: the other protocols (mean over OOD sets, FPR95)",
        "",
        "| protocol | best training-free | NegPrompt | Δ NegPrompt vs best training-free | best trained row | "
        "Δ best trained vs best training-free | NegPrompt's ID acc |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]


def report(result: dict) -> str:
    """The findings as Markdown tables (percent): mean ± sd over seeds [pooled 95% bootstrap interval of
    the mean over resamples of the test images]; Δ = a trained row minus the best training-free row."""
    seeds = result["seeds"]
    out = [
        f"Seeds {seeds}. Cells: mean ± sd over the seeds [pooled 95% bootstrap interval of that mean over "
        "1,000 resamples of the test images], in %. FPR95: lower is better (ID = positive).",
        "",
    ]
    summaries = result.get("summary", {})
    for preset in ("mini-conventional", "mini-hard-ood"):
        summary = summaries.get(preset, {}).get("{}")
        if not summary:
            continue
        sets = list(dict.fromkeys(r["dataset"] for r in summary if r["dataset"] != "mean"))
        out += [f"### {preset}: the whole leaderboard, mean over {len(sets)} OOD set(s)", ""]
        out += leaderboard_md(summary) + [""]
        out += [f"### {preset}: beside the published ImageNet behaviour (mean over OOD sets)", ""]
        out += validity_md(summary) + [""]
        ref = summary[0].get("ref") or ""
        picks = [tuple(ref.split("/", 1))] if "/" in ref else []
        picks += [
            p for p in (("zeroshot", "mcm"), ("coop", "mcm"), ("negprompt", "negprompt")) if p not in picks
        ]
        out += [f"### {preset}: per OOD set (FPR95)", "", "| row | " + " | ".join(sets) + " |",
                "|---" * (len(sets) + 1) + "|"]  # fmt: skip
        for m, sc in picks:
            cells = [(_find(summary, m, sc, d) or {}) for d in sets]
            if all(cells):
                out.append(f"| {_label(cells[0])} | " + " | ".join(_pct(c, "fpr95") for c in cells) + " |")
        out.append("")
    out += protocols_md(summaries.get("mini-hard-ood", {}))
    for preset, grid in result.get("negatives", {}).items():
        out += [f"### Negative contexts ({preset}, NegPrompt score, mean over OOD sets)", "",
                "| M | initial noise | FPR95 | AUROC | Δ FPR95 vs best training-free | cos(neg_i, neg_j) |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        for key in sorted(grid, key=lambda k: (int(k.split()[0][2:]), float(k.split("=")[2]))):
            m, noise = key.split()[0][2:], key.split("=")[2]
            overrides = {} if (m, noise) == ("2", "0.001") else {"n_neg": int(m), "neg_noise": float(noise)}
            summary = summaries.get(preset, {}).get(json.dumps(overrides, sort_keys=True))
            row = _find(summary or [], "negprompt", "negprompt", "mean")
            cos = [e["neg_cos"] for e in grid[key].values() if e["neg_cos"] is not None]
            cos_s = f"{np.mean(cos):.4f}" if cos else "–"
            if row:
                out.append(
                    f"| {m} | {noise} | {_pct(row, 'fpr95')} | {_pct(row, 'auroc')} | {_delta(row)} | {cos_s} |"
                )
        out.append("")
    for preset, by_seed in result.get("temperature", {}).items():
        out += [f"### Score temperature ({preset}, AUROC in %, mean over OOD sets and seeds)", ""]
        temps = sorted({r["temperature"] for rows in by_seed.values() for r in rows})
        out += [
            "| method | " + " | ".join(f"T = {t:g}" for t in temps) + " |",
            "|---" * (len(temps) + 1) + "|",
        ]
        for method in ("coop", "negprompt"):
            cells = []
            for t in temps:
                vals = [
                    r["auroc"]
                    for rows in by_seed.values()
                    for r in rows
                    if r["method"] == method and r["temperature"] == t
                ]
                cells.append(f"{100 * np.mean(vals):.2f}")
            label = "CoOp + MCM" if method == "coop" else "NegPrompt"
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    if "mini-open-vocab" in summaries:
        n_classes = "152" if result.get("world") == "v2" else "10"
        out += [f"### Open vocabulary (mini-open-vocab: both stages learned on a fraction of the {n_classes} classes, "
                "evaluated on all; mean over OOD sets, FPR95)", "",
                "| fraction | best training-free | MCM (zero-shot) | CoOp + MCM | NegPrompt | Δ NegPrompt vs best training-free |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        for overrides, summary in sorted(
            summaries["mini-open-vocab"].items(),
            key=lambda kv: json.loads(kv[0]).get("open_vocab_fraction", 0.5),
        ):
            fraction = json.loads(overrides).get("open_vocab_fraction", 0.5)
            ref = summary[0].get("ref") or ""
            best = _find(summary, *ref.split("/", 1), "mean") if "/" in ref else None
            cells = [
                _find(summary, m, sc, "mean")
                for m, sc in (("zeroshot", "mcm"), ("coop", "mcm"), ("negprompt", "negprompt"))
            ]
            best_s = f"{_label(best)}: {_pct(best, 'fpr95')}" if best else "—"
            row = cells[2] or {}
            out.append(
                f"| {fraction:.0%} | {best_s} | "
                + " | ".join(_pct(c, "fpr95") if c else "—" for c in cells)
                + f" | {_delta(row)} |"
            )
        out.append("")
    out += by_artist_md(result)
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/findings"))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/findings-mini.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", default=["main", "negatives", "temperature", "open_vocab", "protocols"],
                    choices=["main", "negatives", "temperature", "open_vocab", "protocols"])  # fmt: skip
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--world", choices=sorted(WORLDS), default="v1", help="which mini-world (default v1)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (processes, one thread each)")
    ap.add_argument(
        "--epochs", type=int, default=None, help="epochs per stage (default: the presets'; smoke runs)"
    )
    ap.add_argument(
        "--baselines",
        nargs="*",
        default=list(BASELINES),
        help=f"baselines of the main runs, of {list(BASELINES)}",
    )
    ap.add_argument("--report", action="store_true", help="print the tables of --json and stop")
    ap.add_argument(
        "--by-artist",
        action="store_true",
        help="split the OOD acceptance of v2's conventional runs in --out by artist, into --json, and stop",
    )
    ap.add_argument(
        "--summarize",
        action="store_true",
        help="recompute the seed summaries of --json from the runs in --out",
    )
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(args.json.read_text())))
        return 0
    if args.by_artist:
        result = json.loads(args.json.read_text())
        result["by_artist"] = {
            str(seed): by_artist(load_run(args.out / f"mini-conventional-s{seed}").scores)
            for seed in result["seeds"]
        }
        args.json.write_text(json.dumps(result, indent=1))
        print("\n".join(by_artist_md(result)))
        return 0
    if args.summarize:
        result = json.loads(args.json.read_text())
        summaries(result, args.out)
        args.json.write_text(json.dumps(result, indent=1))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"seeds": args.seeds, "device": args.device, "epochs": args.epochs or "preset",
                     "world": args.world, "runs": {}}  # fmt: skip
    todo = tasks(args.seeds, args.parts, args.world)
    from negprompt.defaults import DEMO_DATA_ROOT

    if args.world == "v2":  # written once here, not by every worker at the same time
        from negprompt.miniworld.benchmark_v2 import mini2_root

        mini2_root(DEMO_DATA_ROOT)
    else:
        from negprompt.miniworld.benchmark import mini_root

        mini_root(DEMO_DATA_ROOT)
    baselines = choose_baselines(args.baselines)
    if baselines["csp"] and {"main", "temperature", "negatives"} & set(args.parts):
        warm_csp_banks(args.seeds, args.device, args.world)

    def done(key, path) -> None:
        preset, seed, overrides = key
        record(result, preset, seed, overrides, Path(path), args.parts)
        result["runs"][Path(path).name] = {"preset": preset, "seed": seed, **overrides}
        args.json.write_text(json.dumps(result, indent=1))
        print(f"done {Path(path).name} ({len(result['runs'])}/{len(todo)})", flush=True)

    jobs = [(str(args.out), args.device, args.epochs, baselines, args.world, t) for t in todo]
    if args.jobs <= 1:
        for job in jobs:
            done(*_task(job))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_task, job) for job in jobs]):
                done(*fut.result())
    summaries(result, args.out)
    args.json.write_text(json.dumps(result, indent=1))
    return 0


def summaries(result: dict, out: Path) -> None:
    """``result["summary"][preset][overrides as JSON]``: the seed summary of every finished group of runs."""
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    for name, entry in result["runs"].items():
        overrides = {k: v for k, v in entry.items() if k not in ("preset", "seed")}
        key = (entry["preset"], json.dumps(overrides, sort_keys=True))
        groups.setdefault(key, {})[entry["seed"]] = out / name
    result["summary"] = {}
    for (preset, overrides), by_seed in groups.items():
        result["summary"].setdefault(preset, {})[overrides] = seed_summary(by_seed)


if __name__ == "__main__":
    sys.exit(main())
