"""Contrastive pretraining of ``negprompt-mini`` on the mini-world, and its zero-shot evaluation.

The loss is CLIP's symmetric InfoNCE (Radford et al., 2021) with *all* true pairs as positives: with
logits ``z_ij = s · f_i · g_j`` (unit image features f, caption features g, learned scale s) and the
mask ``P_ij = 1`` when caption j is true of image i (:func:`negprompt.miniworld.world.positives`),

    L = ½ [ −Σ_i Σ_j q_ij log softmax_j(z_ij) / B  −  Σ_j Σ_i r_ij log softmax_i(z_ij) / B ],
    q_ij = P_ij / Σ_j' P_ij',   r_ij = P_ij / Σ_i' P_i'j,

which is the usual loss when every image has one true caption in the batch, and does not push apart
two images of one concept (or two copies of one sentence) when it does not.

``loss="own-caption"`` (:func:`loss_own_caption`) keeps each image's own caption as its only target
and leaves the batch's other true captions out of the softmax instead (neither target nor negative):

    L = ½ [ −Σ_i log softmax_{j ∈ {i} ∪ N_i}(z_ij) / B  −  Σ_j log softmax_{i ∈ {j} ∪ N'_j}(z_ij) / B ],

with N_i the captions false of image i and N'_j the images caption j is false of. With the first
loss a generic caption that is true of most of the batch ("an emoji.") takes a share of every
image's target; with this one an image is pulled only towards the caption drawn for it.

Every step draws its batch from a generator seeded by ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

import negprompt.backbone  # noqa: F401  (registers the model configs)
from negprompt.io import atomic_write
from negprompt.progress import tqdm

from .world import DOMAIN_WEIGHTS, Domain, fact_vocabulary, positives

log = logging.getLogger(__name__)

MODEL = "negprompt-mini"
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
CLUSTER_SIZE = 16
"""Pictures of one subgroup drawn together when ``PretrainConfig.hard_share`` > 0."""
PRECISIONS = ("fp32", "bf16")
"""What ``PretrainConfig.precision`` may be."""
ZERO_SHOT_TEMPLATE = "a photo of a {}"
"""The prompt of the zero-shot evaluation: the toolkit's own ("a photo of a" + class name)."""


@dataclass
class PretrainConfig:
    """The recipe (recorded in the weights' card)."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    shift: int = 2
    n_shapes: int = 30_000
    n_textures: int = 12_000
    save_every: int = 100
    threads: int | None = 2
    loss: str = "all-true-pairs"
    model: str = MODEL
    hard_share: float = 0.0
    """Share of a batch drawn as hard negatives: groups of :data:`CLUSTER_SIZE` pictures of one
    subgroup (faces with faces), so that the batch asks for the fine distinctions zero-shot
    recognition needs; 0 draws every picture independently (v1's and the first v2 recipe)."""
    pair_share: float = 0.0
    """Share of a batch drawn as cross-artist pairs: two pictures of one concept by two artists (an
    outline and a colour drawing, say), whose image features an image-to-image contrastive term also
    pulls together (:func:`loss_pairs`), so that a style the text alone teaches slowly borrows what the
    model learned of the others; 0 draws no pairs and adds no term."""
    precision: str = "fp32"
    """Arithmetic of the two towers' forward pass: ``"fp32"``, or ``"bf16"`` (autocast; the weights,
    gradients, optimizer state and the loss stay fp32). bf16 is faster on a CPU with bf16 support and
    on a GPU, and changes the numbers, so it is part of the recipe."""


def loss_with_duplicates(
    img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """Symmetric contrastive loss with every true pair positive (formula in the module docstring).

    Args:
        img, txt: ``[B, D]`` unit features. scale: the logit scale s. pos: bool ``[B, B]`` (image, caption).
    """
    logits = scale * img @ txt.t()
    p = pos.float()
    q = p / p.sum(1, keepdim=True)
    r = p / p.sum(0, keepdim=True)
    i2t = -(q * F.log_softmax(logits, dim=1)).sum(1).mean()
    t2i = -(r * F.log_softmax(logits, dim=0)).sum(0).mean()
    return 0.5 * (i2t + t2i)


def loss_own_caption(
    img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """Symmetric contrastive loss with each image's own caption (the diagonal) as its only target and
    the batch's other true pairs masked out of both softmaxes (formula in the module docstring)."""
    eye = torch.eye(len(img), dtype=torch.bool, device=img.device)
    logits = (scale * img @ txt.t()).masked_fill(pos & ~eye, float("-inf"))
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def loss_pairs(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric image-to-image contrastive loss of P pairs: ``a[k]``'s only target is ``b[k]`` (two
    pictures of one concept), other pairs of the same concept (``same[k, l]``) are left out.

    Args:
        a, b: ``[P, D]`` unit image features. scale: the logit scale. same: bool ``[P, P]``.
    """
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    logits = (scale * a @ b.t()).masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


LOSSES = {"all-true-pairs": loss_with_duplicates, "own-caption": loss_own_caption}
"""The recipe's ``loss`` choices."""


class Batch(NamedTuple):
    """One pretraining batch (:meth:`Pool.batch`)."""

    images: torch.Tensor
    tokens: torch.Tensor
    positives: torch.Tensor
    concept: torch.Tensor


class Pool:
    """All pretraining images in one array, their caption ids and fact vectors, for fast batches.

    A sentence used for different things (a synonym of one concept that is another's hypernym)
    states only the facts common to all its uses, so it is true of every image it was written for.
    """

    def __init__(self, world: dict[str, Domain], tokenizer, weights: dict[str, float] | None = None) -> None:
        self.vocab = fact_vocabulary(world)
        self.domains = list(world)
        self.images = np.concatenate([d.images for d in world.values()])
        self.offsets = np.cumsum([0] + [len(d) for d in world.values()])
        texts: dict[str, int] = {}
        cap_facts: list[frozenset] = []
        group_caps, group_facts, image_group = [], [], []
        for d in world.values():
            base = len(group_caps)
            for caps, facts in zip(d.captions, d.facts):
                ids = []
                for c in caps:
                    if c.text not in texts:
                        texts[c.text] = len(texts)
                        cap_facts.append(c.facts)
                    else:  # one sentence said of different things states only what they share
                        cap_facts[texts[c.text]] &= c.facts
                    ids.append(texts[c.text])
                group_caps.append(np.asarray(ids))
                group_facts.append(facts)
            image_group.append(d.group + base)
        self.image_group = np.concatenate(image_group)
        # the subgroup fact of each picture (None outside v2's emoji): the hard-negative clusters
        subgroup = [next((f for f in facts if f.startswith("subgroup=")), None) for facts in group_facts]
        names = sorted({s for s in subgroup if s is not None})
        of_group = np.asarray([names.index(s) if s is not None else -1 for s in subgroup], dtype=np.int64)
        cluster = of_group[self.image_group] if len(of_group) else np.zeros(0, np.int64)
        self.clusters = [np.flatnonzero(cluster == k) for k in range(len(names))]
        # per concept, its pictures by each style (concepts drawn in one style only have no pairs)
        concept = [next((f for f in facts if f.startswith("concept=")), None) for facts in group_facts]
        style = [next((f for f in facts if f.startswith("style=")), None) for facts in group_facts]
        by: dict[str, dict[str, list[int]]] = {}
        for i, g in enumerate(self.image_group):
            if concept[g] is not None:
                by.setdefault(concept[g], {}).setdefault(style[g], []).append(i)
        names_c = sorted(by)
        self.concept = np.full(len(self.images), -1, dtype=np.int64)  # concept id of each picture (-1: none)
        for k, c in enumerate(names_c):
            for rows in by[c].values():
                self.concept[rows] = k
        self.pair_concepts = sorted(c for c, styles in by.items() if len(styles) > 1)
        self.pair_styles = [[np.asarray(v) for _, v in sorted(by[c].items())] for c in self.pair_concepts]
        self.group_caps = group_caps
        self.group_facts = self._bool(group_facts)
        self.caption_facts = self._bool(cap_facts)
        self.texts = list(texts)
        tokens = tokenizer(self.texts)
        self.tokens = tokens
        self.token_len = (tokens != 0).sum(1).numpy()
        weights = DOMAIN_WEIGHTS if weights is None else weights
        self.weights = np.asarray([weights[n] for n in self.domains], dtype=np.float64)
        self.weights /= self.weights.sum()

    def _bool(self, sets: list[frozenset]) -> np.ndarray:
        out = np.zeros((len(sets), len(self.vocab)), dtype=bool)
        for i, s in enumerate(sets):
            out[i, [self.vocab[f] for f in s]] = True
        return out

    def n_pairs(self, size: int, pair_share: float) -> int:
        """Cross-artist pairs in a batch of ``size`` (0 where the pool has no concept in two styles)."""
        return int(size * pair_share) // 2 if self.pair_concepts else 0

    def batch(
        self,
        rng: np.random.Generator,
        size: int,
        shift: int,
        hard_share: float = 0.0,
        pair_share: float = 0.0,
    ) -> Batch:
        """A :class:`Batch`: images ``[B, 3, 32, 32]`` normalised, tokens ``[B, L]``, positives bool
        ``[B, B]`` (image, caption), and each picture's concept id (-1 outside v2's emoji).

        ``hard_share`` of the batch (rounded down to whole clusters) comes as clusters of
        :data:`CLUSTER_SIZE` pictures of one subgroup, a subgroup drawn in proportion to its pictures.
        ``pair_share`` of it comes last as P = :meth:`n_pairs` cross-artist pairs, the P first
        pictures then the P second ones (``[…, a_1 … a_P, b_1 … b_P]``): a concept drawn uniformly among
        those in two styles or more, two of its styles, a picture of each. The rest is drawn as with
        both shares 0, whose draws are unchanged by these options.
        """
        n_clusters = int(size * hard_share) // CLUSTER_SIZE if self.clusters else 0
        n_pairs = self.n_pairs(size, pair_share)
        if n_clusters * CLUSTER_SIZE + 2 * n_pairs > size:
            raise ValueError(
                f"hard_share={hard_share} and pair_share={pair_share} add up to more than a batch"
            )
        free = size - n_clusters * CLUSTER_SIZE - 2 * n_pairs
        dom = rng.choice(len(self.domains), size=free, p=self.weights)
        lo, hi = self.offsets[dom], self.offsets[dom + 1]
        idx = lo + (rng.random(free) * (hi - lo)).astype(np.int64)
        if n_clusters:
            sizes = np.asarray([len(c) for c in self.clusters], dtype=np.float64)
            picked = rng.choice(len(self.clusters), size=n_clusters, p=sizes / sizes.sum())
            idx = np.concatenate([idx] + [rng.choice(self.clusters[k], CLUSTER_SIZE) for k in picked])
        if n_pairs:
            first, second = [], []
            for c in rng.integers(len(self.pair_concepts), size=n_pairs):
                styles = self.pair_styles[c]
                s1, s2 = rng.choice(len(styles), size=2, replace=False)
                first.append(styles[s1][rng.integers(len(styles[s1]))])
                second.append(styles[s2][rng.integers(len(styles[s2]))])
            idx = np.concatenate([idx, first, second]).astype(np.int64)
        groups = self.image_group[idx]
        caps = np.asarray([self.group_caps[g][rng.integers(len(self.group_caps[g]))] for g in groups])
        imgs = self.images[idx]
        if shift:
            padded = np.pad(imgs, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
            dy, dx = rng.integers(0, 2 * shift + 1, size=(2, size))
            imgs = np.stack([padded[i, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(size)])
        x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - MEAN) / STD
        length = int(self.token_len[caps].max())
        tokens = self.tokens[torch.from_numpy(caps), :length]
        pos = torch.from_numpy(positives(self.group_facts[groups], self.caption_facts[caps]))
        return Batch(x, tokens, pos, torch.from_numpy(self.concept[idx]))


def encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` on tokens cut to their batch's longest caption ``[B, L]`` (L <= 77).

    The text tower is causal and pools at the end-of-text token, so the padding after it changes
    nothing; cutting it saves most of the text tower's work on short captions.
    """
    length = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    return x @ model.text_projection


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def new_model(seed: int, model_name: str = MODEL) -> torch.nn.Module:
    """A randomly initialised ``model_name`` (default ``negprompt-mini``; seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None)
    return model


def _atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp), fsync=True)


def _check(cfg: PretrainConfig) -> None:
    for name in ("hard_share", "pair_share"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name}={getattr(cfg, name)} must be in [0, 1]")
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r}; choose one of {list(PRECISIONS)}")


def _train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    pool: Pool,
    cfg: PretrainConfig,
    step: int,
    device: str,
    loss_fn,
    n_pairs: int,
) -> torch.Tensor:
    """One optimizer step of ``cfg`` at ``step`` (its batch and dropout seeded by ``(seed, step)``)."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, cfg)
    rng = np.random.default_rng([cfg.seed, step])
    torch.manual_seed(cfg.seed * 1_000_003 + step)
    x, tokens, pos, concept = pool.batch(rng, cfg.batch_size, cfg.shift, cfg.hard_share, cfg.pair_share)
    with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=cfg.precision == "bf16"):
        img = model.encode_image(x.to(device))
        txt = encode_text(model, tokens.to(device))
    img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
    loss = loss_fn(img, txt, model.logit_scale.exp(), pos.to(device))
    if n_pairs:
        a, b = img[-2 * n_pairs : -n_pairs], img[-n_pairs:]
        c = concept[-n_pairs:]
        same = (c[:, None] == c[None, :]).to(device)
        loss = loss + loss_pairs(a, b, model.logit_scale.exp(), same)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return loss


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def seconds_per_step(
    world: dict[str, Domain],
    cfg: PretrainConfig,
    *,
    device: str = "cpu",
    domain_weights: dict[str, float] | None = None,
    steps: int = 10,
) -> float:
    """Mean wall time of one step of ``cfg`` on ``device``, from ``steps`` timed steps (after two untimed
    ones) of a throwaway model: what :func:`steps_within` divides a time budget by."""
    _check(cfg)
    if cfg.threads and device == "cpu":
        torch.set_num_threads(cfg.threads)
    model = new_model(cfg.seed, cfg.model).to(device).train()
    pool = Pool(world, open_clip.get_tokenizer(cfg.model), domain_weights)
    opt, loss_fn = _optimizer(model, cfg), LOSSES[cfg.loss]
    n_pairs = pool.n_pairs(cfg.batch_size, cfg.pair_share)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for step in range(2):
        _train_step(model, opt, pool, cfg, step, device, loss_fn, n_pairs)
    sync()
    t0 = time.perf_counter()
    for step in range(2, 2 + steps):
        _train_step(model, opt, pool, cfg, step, device, loss_fn, n_pairs).item()
    sync()
    return (time.perf_counter() - t0) / steps


def steps_within(seconds: float, per_step: float, cfg: PretrainConfig) -> int:
    """The number of steps of ``per_step`` seconds that fit in ``seconds`` (at least the warm-up and one
    more): a run's length from a time budget, fixed before it starts so that its schedule is the
    recipe's, and recorded, so that the run can be repeated with ``steps`` alone."""
    if seconds <= 0 or per_step <= 0:
        raise ValueError(f"a time budget ({seconds} s) and a step's time ({per_step} s) must be positive")
    return max(int(seconds / per_step), cfg.warmup + 1)


def fit_to_budget(
    seconds: float,
    world: dict[str, Domain],
    cfg: PretrainConfig,
    state_file: Path,
    *,
    device: str = "cpu",
    domain_weights: dict[str, float] | None = None,
) -> tuple[PretrainConfig, dict]:
    """``cfg`` with the steps that fit in ``seconds`` on ``device``, and what to record of it.

    A run that resumes from ``state_file`` keeps the length its checkpoint recorded: the schedule was
    fixed when it started (a damaged checkpoint is timed afresh; :func:`pretrain` then names it).
    """
    if state_file.exists():
        try:
            steps = int(torch.load(state_file, map_location="cpu", weights_only=True)["config"]["steps"])
            return replace(cfg, steps=steps), {"time_budget_s": seconds, "steps_from": "checkpoint"}
        except Exception:
            pass
    per_step = seconds_per_step(world, cfg, device=device, domain_weights=domain_weights)
    steps = steps_within(seconds, per_step, cfg)
    log.info("%d steps fit in %.0f s at %.3f s per step on %s", steps, seconds, per_step, device)
    return replace(cfg, steps=steps), {"time_budget_s": seconds, "probe_seconds_per_step": round(per_step, 4)}


def pretrain(
    world: dict[str, Domain],
    cfg: PretrainConfig,
    state_file: Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    domain_weights: dict[str, float] | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train ``negprompt-mini`` from scratch; resumes from ``state_file`` when it exists.

    ``domain_weights`` (share of each domain of ``world`` in a batch) defaults to v1's
    :data:`~negprompt.miniworld.world.DOMAIN_WEIGHTS`.

    Returns the model (fp32, on CPU) and a summary (losses, wall time, peak memory of this process, steps
    run here).
    """
    _check(cfg)
    loss_fn = LOSSES[cfg.loss]
    if cfg.threads and device == "cpu":
        torch.set_num_threads(cfg.threads)
    model = new_model(cfg.seed, cfg.model).to(device)
    pool = Pool(world, open_clip.get_tokenizer(cfg.model), domain_weights)
    opt = _optimizer(model, cfg)
    start, history = 0, []
    if state_file.exists():
        try:
            state = torch.load(state_file, map_location=device, weights_only=True)
        except Exception as exc:
            raise RuntimeError(
                f"pretraining checkpoint {state_file} cannot be read ({type(exc).__name__}: {exc}); "
                "delete it to start over"
            ) from exc
        free = {"save_every", "threads"}  # settings that do not change the result
        # a field added to the recipe later reads as its default in an older checkpoint
        saved = asdict(type(cfg)()) | dict(state.get("config") or {})
        saved = {k: v for k, v in saved.items() if k not in free and k in asdict(cfg)}
        if saved != {k: v for k, v in asdict(cfg).items() if k not in free}:
            raise RuntimeError(
                f"pretraining checkpoint {state_file} was made with another recipe "
                f"({state.get('config')}); delete it or use another --out"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["history"])
        log.info("resuming pretraining at step %d", start)
    model.train()
    n_pairs = pool.n_pairs(cfg.batch_size, cfg.pair_share)
    t0, steps_here = time.perf_counter(), 0
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(range(start, end), desc=f"pretraining {cfg.model}", disable=not progress, mininterval=2.0)
    for step in bar:
        loss = _train_step(model, opt, pool, cfg, step, device, loss_fn, n_pairs)
        history.append(loss.item())
        steps_here += 1
        if progress:
            bar.set_postfix(
                loss=f"{history[-1]:.3f}", scale=f"{model.logit_scale.exp().item():.1f}", refresh=False
            )
        if (step + 1) % cfg.save_every == 0 or step + 1 == end:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                     "history": history, "config": asdict(cfg)}  # fmt: skip
            _atomic_torch_save(state, state_file)
    seconds = time.perf_counter() - t0
    summary = {
        "steps_done": len(history),
        "steps_this_process": steps_here,
        "seconds_this_process": round(seconds, 1),
        "seconds_per_step": round(seconds / max(steps_here, 1), 3),
        "final_loss_mean_last_50": round(float(np.mean(history[-50:])), 4) if history else None,
        "device": device,
    } | peak_memory(device)
    return model.eval().cpu(), summary


def peak_memory(device: str) -> dict:
    """This process's peak memory so far, in MB: ``peak_rss_mb_this_process`` (resident set: the
    pictures, the model, the optimizer; none where the platform does not report it) and, on a CUDA
    device, ``peak_cuda_mb_this_process`` (tensors torch allocated there)."""
    out = {}
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
        out["peak_rss_mb_this_process"] = round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError):
        out["peak_rss_mb_this_process"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        out["peak_cuda_mb_this_process"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


@torch.no_grad()
def zero_shot_accuracy(model: torch.nn.Module, domain: Domain, batch_size: int = 1024) -> float:
    """Top-1 accuracy of "a photo of a <class>" prompts over the domain's classes."""
    tokenizer = open_clip.get_tokenizer(MODEL)
    model = model.eval()
    text = F.normalize(
        model.encode_text(tokenizer([ZERO_SHOT_TEMPLATE.format(n) for n in domain.class_names])), dim=-1
    )
    correct = 0
    for i in range(0, len(domain), batch_size):
        x = torch.from_numpy(domain.images[i : i + batch_size]).permute(0, 3, 1, 2).float().div_(255.0)
        f = F.normalize(model.encode_image((x - MEAN) / STD), dim=-1)
        pred = (f @ text.t()).argmax(1).numpy()
        correct += int((pred == domain.labels[i : i + batch_size]).sum())
    return correct / max(len(domain), 1)


def evaluate(model: torch.nn.Module, world: dict[str, Domain]) -> dict[str, dict]:
    """Zero-shot top-1 per evaluation set: ``{name: {"top1": …, "images": …, "classes": …}}``."""
    return {
        name: {
            "top1": round(zero_shot_accuracy(model, d), 4),
            "images": len(d),
            "classes": len(d.class_names),
        }
        for name, d in world.items()
    }


def save_weights(model: torch.nn.Module, path: Path, name: str = MODEL) -> None:
    """fp16 safetensors of the model's (architecture ``name``) state dict, written atomically."""
    import safetensors.torch

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "model": name}
    atomic_write(
        path, lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata=metadata), fsync=True
    )


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically."""
    atomic_write(path, json.dumps(data, indent=1))
