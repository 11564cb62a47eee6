"""OOD scores of a CLIP image against positive (and negative) prompts. Higher = more in-distribution.

Every score is a pure function of the raw cosine similarities (not multiplied by CLIP's logit scale
of about 100) between L2-normalised image features and L2-normalised text features:

- ``s_pos`` [N, C]: s_c = cos(f, t_c), one column per class's positive prompt;
- ``s_neg`` [N, C, M]: s̃_{c,m} = cos(f, t̃_{c,m}), the M negative prompts of each class;
- ``s_local`` [N, P, C]: cos(g_p, t_c) of the P local (patch) features g_p (`negprompt.local`),
  for the scores that `needs_local` (GL-MCM).

The scores live in one small registry, `SCORES`; `score` computes one of them from features and
`score_all` computes several from one pass over the similarities, in batches. Everything is
computed in log space (``logsumexp``) in the input dtype promoted to at least float32, so small
temperatures neither overflow nor underflow before the final ``exp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SCORES",
    "ScoreSpec",
    "available_scores",
    "energy_score",
    "gl_mcm_score",
    "l_mcm_score",
    "maxlogit_score",
    "mcm_score",
    "needs_local",
    "needs_negatives",
    "negprompt_score",
    "posi_nega_score",
    "predict",
    "predict_and_score",
    "score",
    "score_all",
    "similarities",
]

DEFAULT_BATCH_SIZE = 8192
_NORM_TOLERANCE = 1e-2  # float16-stored features are unit length to about 1e-3


# --------------------------------------------------------------------------- the scores (pure math)


def _extended_logsumexp(z_pos: Tensor, z_neg: Tensor) -> Tensor:
    """log(Σ_j e^{z_j} + Σ_j Σ_m e^{z̃_{j,m}}) over the C(1+M) columns. [N, C], [N, C, M] -> [N].

    Two row-wise logsumexps joined with ``logaddexp``: no concatenated copy of the similarities.
    """
    return torch.logaddexp(torch.logsumexp(z_pos, dim=1), torch.logsumexp(z_neg.flatten(1), dim=1))


def _div(s: Tensor, temperature: float) -> Tensor:
    """``s / T`` (no copy for T = 1)."""
    return s if temperature == 1.0 else s / temperature


def negprompt_score(s_pos: Tensor, s_neg: Tensor, temperature: float = 1.0) -> Tensor:
    """NegPrompt's extended MCM score: the largest positive probability of a softmax over all prompts.

    S(x) = max_c e^{s_c/T} / (Σ_j e^{s_j/T} + Σ_j Σ_m e^{s̃_{j,m}/T})

    Li, Pang, Bai, Miao, Zheng, "Learning Transferable Negative Prompts for Out-of-Distribution
    Detection", CVPR 2024. An image that matches a negative prompt well gets a large denominator and
    a low score. Computed as exp(max_c s_c/T − logsumexp(all columns / T)).

    Args:
        s_pos: [N, C] cosine similarities to the positive prompts.
        s_neg: [N, C, M] cosine similarities to the negative prompts.
        temperature: T > 0.

    Returns:
        [N] scores in (0, 1].
    """
    z_pos, z_neg = _div(s_pos, temperature), _div(s_neg, temperature)
    return torch.exp(z_pos.amax(dim=1) - _extended_logsumexp(z_pos, z_neg))


def mcm_score(s_pos: Tensor, s_neg: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Maximum Concept Matching: the largest softmax probability over the positive prompts only.

    S(x) = max_c e^{s_c/T} / Σ_j e^{s_j/T}

    Ming, Cai, Gu, Sun, Li, Li, "Delving into Out-of-Distribution Detection with Vision-Language
    Representations", NeurIPS 2022. ``s_neg`` is ignored.

    Args:
        s_pos: [N, C] cosine similarities to the positive prompts.
        s_neg: ignored.
        temperature: T > 0.

    Returns:
        [N] scores in [1/C, 1].
    """
    z = _div(s_pos, temperature)
    return torch.exp(z.amax(dim=1) - torch.logsumexp(z, dim=1))


def maxlogit_score(s_pos: Tensor, s_neg: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Maximum logit: the largest cosine similarity to a positive prompt, S(x) = max_c s_c.

    Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings", ICML 2022
    (MaxLogit), applied to CLIP cosines as in MCM's baselines. Independent of the temperature;
    ``s_neg`` is ignored.

    Args:
        s_pos: [N, C] cosine similarities to the positive prompts.

    Returns:
        [N] scores in [-1, 1].
    """
    return s_pos.amax(dim=1)


def energy_score(s_pos: Tensor, s_neg: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Negative free energy of the positive prompts: S(x) = T · log Σ_c e^{s_c/T}.

    Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020; the sign is
    chosen so that higher = more in-distribution. ``s_neg`` is ignored.

    Args:
        s_pos: [N, C] cosine similarities to the positive prompts.
        temperature: T > 0.

    Returns:
        [N] scores.
    """
    return temperature * torch.logsumexp(_div(s_pos, temperature), dim=1)


def posi_nega_score(s_pos: Tensor, s_neg: Tensor, temperature: float = 1.0) -> Tensor:
    """Positive minus negative probability of the predicted class.

    S(x) = p_ĉ − max_m p̃_{ĉ,m},  ĉ = argmax_c s_c,

    where p and p̃ are the probabilities of the softmax over all C(1+M) prompts (the denominator of
    `negprompt_score`); a margin score for NegPrompt's prompts (Li et al., CVPR 2024). An image whose
    predicted class's best negative prompt fits as well as its positive prompt scores 0 or below.

    Args:
        s_pos: [N, C] cosine similarities to the positive prompts.
        s_neg: [N, C, M] cosine similarities to the negative prompts.
        temperature: T > 0.

    Returns:
        [N] scores in (-1, 1).
    """
    z_pos, z_neg = _div(s_pos, temperature), _div(s_neg, temperature)
    log_norm = _extended_logsumexp(z_pos, z_neg)
    z_best, c_hat = z_pos.max(dim=1)
    z_neg_best = z_neg.gather(1, c_hat[:, None, None].expand(-1, 1, z_neg.shape[2])).squeeze(1).amax(dim=1)
    return torch.exp(z_best - log_norm) - torch.exp(z_neg_best - log_norm)


def l_mcm_score(s_pos: Tensor, s_neg: Tensor | None, temperature: float, s_local: Tensor) -> Tensor:
    """Local MCM: the largest class probability over all local regions.

    S_L(x) = max_p max_c e^{s_{p,c}/T} / Σ_j e^{s_{p,j}/T},  s_{p,c} = cos(g_p, t_c),

    with g_p the P local features of the image (Miyai, Yu, Irie, Aizawa, "Zero-Shot In-Distribution
    Detection in Multi-Object Settings Using Vision-Language Foundation Models" (GL-MCM), 2023).
    ``s_pos`` and ``s_neg`` are ignored.

    Args:
        s_local: [N, P, C] cosine similarities of the local features to the positive prompts.
        temperature: T > 0.

    Returns:
        [N] scores in [1/C, 1].
    """
    z = s_local / temperature
    return torch.exp(z.amax(dim=2) - torch.logsumexp(z, dim=2)).amax(dim=1)


def gl_mcm_score(
    s_pos: Tensor, s_neg: Tensor | None, temperature: float, s_local: Tensor, weight: float = 1.0
) -> Tensor:
    """GL-MCM: global MCM plus λ times local MCM, S(x) = S_MCM(x) + λ · S_L(x), λ = 1 (the paper's).

    Miyai et al., GL-MCM, 2023 (see `l_mcm_score`); LoCoOp (NeurIPS 2023) reports its prompts with
    this score. ``s_neg`` is ignored.

    Args:
        s_pos: [N, C] global cosine similarities; s_local: [N, P, C] local ones; temperature: T > 0.

    Returns:
        [N] scores in [(1 + λ)/C, 1 + λ].
    """
    return mcm_score(s_pos, None, temperature) + weight * l_mcm_score(s_pos, None, temperature, s_local)


@dataclass(frozen=True)
class ScoreSpec:
    """One registered score: ``fn(s_pos [N, C], s_neg [N, C, M] | None, temperature) -> [N]``.

    Scores that ``needs_local`` also take ``s_local`` [N, P, C] as a fourth argument.
    """

    name: str
    fn: Callable[..., Tensor]
    needs_negatives: bool
    summary: str
    needs_local: bool = False


SCORES: dict[str, ScoreSpec] = {
    spec.name: spec
    for spec in (
        ScoreSpec(
            "negprompt", negprompt_score, True, "NegPrompt's extended MCM over positive + negative prompts"
        ),
        ScoreSpec("mcm", mcm_score, False, "maximum softmax probability over the positive prompts (MCM)"),
        ScoreSpec("maxlogit", maxlogit_score, False, "largest cosine similarity to a positive prompt"),
        ScoreSpec("energy", energy_score, False, "T · logsumexp of the positive cosines / T"),
        ScoreSpec("posi_nega", posi_nega_score, True, "p(predicted class) − its best negative's p"),
        ScoreSpec("gl_mcm", gl_mcm_score, False, "global + local MCM (GL-MCM)", needs_local=True),
        ScoreSpec("l_mcm", l_mcm_score, False, "local MCM: best region's MCM (GL-MCM)", needs_local=True),
    )
}
"""The score registry: name -> `ScoreSpec`. Every score is higher = more in-distribution."""


def available_scores() -> list[str]:
    """Names of the registered scores, in registry order."""
    return list(SCORES)


def _spec(name: str) -> ScoreSpec:
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; available scores: {', '.join(SCORES)}")
    return SCORES[name]


def needs_negatives(name: str) -> bool:
    """Whether score ``name`` needs negative prompt features (``neg_text``)."""
    return _spec(name).needs_negatives


def needs_local(name: str) -> bool:
    """Whether score ``name`` needs local (patch) image features (``local_features``)."""
    return _spec(name).needs_local


# --------------------------------------------------------------------------- validation and similarities


def _as_tensor(x: Tensor | np.ndarray, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if not arr.flags.writeable:  # e.g. a memory-mapped file; torch wants writable memory
        arr = arr.copy()
    try:
        return torch.from_numpy(arr)
    except TypeError as err:
        raise ValueError(f"{what} must be a numeric tensor or array, got dtype {arr.dtype}") from err


def _check_finite(x: Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or infinite values; recompute the features")


def _check_unit(x: Tensor, what: str) -> None:
    """Finite and L2-normalised rows, from one pass (the row norms) and one device-to-host copy.

    A NaN or infinite element makes its row norm NaN or infinite; only then is the slower
    element-wise check run, to name the problem.
    """
    if x.numel() == 0:
        return
    norms = torch.linalg.vector_norm(x, dim=-1)
    worst = (norms - 1).abs().max().item()
    if not np.isfinite(worst):
        _check_finite(x, what)  # raises for NaN / inf elements; else the norm overflowed
    if not worst <= _NORM_TOLERANCE:
        raise ValueError(
            f"{what} are not L2-normalised (a row norm differs from 1 by {worst:.3g}); "
            "normalise them first, e.g. torch.nn.functional.normalize(x, dim=-1)"
        )


def _prepare_text(
    pos_text: Tensor | np.ndarray, neg_text: Tensor | np.ndarray | None, width: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor | None, torch.dtype]:
    """Check the text features' shapes, finiteness and unit length; the common dtype (>= float32)."""
    p = _as_tensor(pos_text, "pos_text")
    n = None if neg_text is None else _as_tensor(neg_text, "neg_text")
    if p.ndim != 2:
        raise ValueError(f"pos_text must be [C, D], got shape {tuple(p.shape)}")
    if p.shape[0] == 0:
        raise ValueError("pos_text has no classes (C = 0); give at least one positive prompt feature")
    if p.shape[1] != width:
        raise ValueError(
            f"feature width mismatch: image_features have width {width} but pos_text has width "
            f"{p.shape[1]}; use text and image features of the same model"
        )
    dtype = torch.promote_types(torch.promote_types(dtype, p.dtype), torch.float32)
    if n is not None:
        if n.ndim != 3:
            raise ValueError(f"neg_text must be [C, M, D], got shape {tuple(n.shape)}")
        if n.shape[0] != p.shape[0]:
            raise ValueError(f"neg_text has {n.shape[0]} classes but pos_text has {p.shape[0]}")
        if n.shape[1] == 0:
            raise ValueError("neg_text has no negative prompts (M = 0); pass neg_text=None instead")
        if n.shape[2] != width:
            raise ValueError(
                f"feature width mismatch: image_features have width {width} but neg_text has "
                f"width {n.shape[2]}; use text and image features of the same model"
            )
        dtype = torch.promote_types(dtype, n.dtype)
    if not dtype.is_floating_point:
        raise ValueError(f"features must be real floating-point numbers, got {dtype}")
    for x, what in ((p, "pos_text"), (n, "neg_text")):
        if x is not None:
            _check_unit(x, what)
    return p, n, dtype


def _check_images(f: Tensor | np.ndarray) -> Tensor:
    f = _as_tensor(f, "image_features")
    if f.ndim != 2:
        raise ValueError(f"image_features must be [N, D], got shape {tuple(f.shape)}")
    return f


def _prepare(
    image_features: Tensor | np.ndarray,
    pos_text: Tensor | np.ndarray,
    neg_text: Tensor | np.ndarray | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Check shapes, finiteness and unit length; cast to a common float dtype (>= float32) and device."""
    f = _check_images(image_features)
    p, n, dtype = _prepare_text(pos_text, neg_text, f.shape[1], f.dtype)
    f = _cast_images(f, dtype)
    p = p.to(device=f.device, dtype=dtype)
    return f, p, None if n is None else n.to(device=f.device, dtype=dtype)


def _cast_images(f: Tensor, dtype: torch.dtype) -> Tensor:
    f = f.to(dtype=dtype)
    _check_unit(f, "image_features")
    return f


def _sims(f: Tensor, p: Tensor, n: Tensor | None) -> tuple[Tensor, Tensor | None]:
    s_pos = f @ p.T
    if n is None:
        return s_pos, None
    c, m, d = n.shape
    return s_pos, (f @ n.reshape(c * m, d).T).reshape(f.shape[0], c, m)


def _local_sims(local: Tensor | np.ndarray, p: Tensor, n_images: int) -> Tensor:
    """``s_local = g · tᵀ`` [B, P, C] of a batch of local features [B, P, D], checked like the others."""
    g = _as_tensor(local, "local_features")
    if g.ndim != 3 or g.shape[0] != n_images or g.shape[2] != p.shape[1]:
        raise ValueError(
            f"local_features must be [N, P, D] with N = {n_images} images and D = {p.shape[1]}, "
            f"got shape {tuple(g.shape)}"
        )
    g = g.to(device=p.device, dtype=p.dtype)
    _check_finite(g, "local_features")
    _check_unit(g, "local_features")
    return g @ p.T


def _sims_joint(f: Tensor, text: Tensor, c: int, m: int) -> tuple[Tensor, Tensor | None]:
    """One matmul against ``text = [p; n.reshape(C·M, D)]`` ``[C(1+M), D]``; views of its columns."""
    s = f @ text.T
    if m == 0:
        return s, None
    return s[:, :c], s[:, c:].view(f.shape[0], c, m)


def similarities(
    image_features: Tensor, pos_text: Tensor, neg_text: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Cosine similarities of L2-normalised features.

    Args:
        image_features: [N, D] image features.
        pos_text: [C, D] positive prompt features.
        neg_text: [C, M, D] negative prompt features, or None.

    Returns:
        ``(s_pos [N, C], s_neg [N, C, M] or None)`` in the input dtype promoted to >= float32.
    """
    return _sims(*_prepare(image_features, pos_text, neg_text))


def predict(image_features: Tensor, pos_text: Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> Tensor:
    """Predicted class per image: argmax_c cos(f, t_c) over the positive prompts.

    Args:
        image_features: [N, D] L2-normalised image features.
        pos_text: [C, D] L2-normalised positive prompt features.

    Returns:
        [N] class indices (long).
    """
    return predict_and_score([], image_features, pos_text, batch_size=batch_size)[0]


# --------------------------------------------------------------------------- public entry points


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def score(
    name: str,
    image_features: Tensor,
    pos_text: Tensor,
    neg_text: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """One score per image, higher = more in-distribution.

    Args:
        name: a registered score, see `available_scores` (``negprompt``, ``mcm``, ``maxlogit``,
            ``energy``, ``posi_nega``).
        image_features: [N, D] L2-normalised image features (tensor or numpy array).
        pos_text: [C, D] L2-normalised positive prompt features.
        neg_text: [C, M, D] L2-normalised negative prompt features; required by scores that
            `needs_negatives`, ignored by the others.
        temperature: T > 0, applied to raw cosines (T = 1 by default, not CLIP's 1/100).

    Returns:
        [N] scores in the input dtype promoted to >= float32, on the device of ``image_features``.

    Raises:
        ValueError: unknown score, mismatched shapes or widths, NaN/inf features, C = 0, missing
            negatives, or a temperature <= 0.
    """
    return score_all([name], image_features, pos_text, neg_text, temperature)[name]


def score_all(
    names: Sequence[str] | str | None,
    image_features: Tensor | np.ndarray,
    pos_text: Tensor | np.ndarray,
    neg_text: Tensor | np.ndarray | None = None,
    temperature: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    local_features: Tensor | np.ndarray | None = None,
) -> dict[str, Tensor]:
    """Several scores from one pass over the similarities, in batches of images.

    Args:
        names: score names; None means every registered score that the given inputs allow (all of
            them with ``neg_text``, those that do not `needs_negatives` without).
        image_features: [N, D] L2-normalised image features; a (memory-mapped) numpy array is read
            one batch at a time.
        pos_text: [C, D] positive prompt features.
        neg_text: [C, M, D] negative prompt features or None.
        temperature: T > 0.
        batch_size: images per batch; the result does not depend on it.
        local_features: [N, P, D] local features for the scores that `needs_local` (GL-MCM).

    Returns:
        ``{name: [N] scores}`` in the order of ``names``.
    """
    return predict_and_score(
        names, image_features, pos_text, neg_text, temperature, batch_size, local_features, with_pred=False
    )[1]


def predict_and_score(
    names: Sequence[str] | str | None,
    image_features: Tensor | np.ndarray,
    pos_text: Tensor | np.ndarray,
    neg_text: Tensor | np.ndarray | None = None,
    temperature: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    local_features: Tensor | np.ndarray | None = None,
    *,
    with_pred: bool = True,
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """The predicted classes and the scores of :func:`score_all` from one pass over the similarities.

    Args:
        local_features: [N, P, D] L2-normalised local features (`negprompt.local`) for the scores
            that `needs_local`; with None (the default, ``names=None``) those scores are left out.

    Returns:
        ``([N] class indices (long), {name: [N] scores})``; ``with_pred=False`` skips the argmax
        and returns None for the classes.
    """
    if names is None:
        names = [
            n
            for n, s in SCORES.items()
            if (neg_text is not None or not s.needs_negatives)
            and (local_features is not None or not s.needs_local)
        ]
    elif isinstance(names, str):
        names = [names]
    specs = [_spec(n) for n in names]
    missing = [s.name for s in specs if s.needs_negatives and neg_text is None]
    if missing:
        raise ValueError(
            f"score(s) {', '.join(missing)} need negative prompt features; pass neg_text [C, M, D]"
        )
    no_local = [s.name for s in specs if s.needs_local and local_features is None]
    if no_local:
        raise ValueError(
            f"score(s) {', '.join(no_local)} need local image features; pass local_features [N, P, D] "
            "(negprompt.local.encode_global_local)"
        )
    t = _check_temperature(temperature)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_images = image_features.shape[0] if hasattr(image_features, "shape") else len(image_features)
    need_neg = any(s.needs_negatives for s in specs)
    starts = range(0, n_images, batch_size) if n_images else [0]
    parts: dict[str, list[Tensor]] = {s.name: [] for s in specs}
    preds: list[Tensor] = []
    # the text features are checked and laid out once, not once per batch of images
    first = _check_images(image_features[:batch_size])
    p, n, dtype = _prepare_text(pos_text, neg_text if need_neg else None, first.shape[1], first.dtype)
    c, m = p.shape[0], 0 if n is None else n.shape[1]
    text = p.to(device=first.device, dtype=dtype)
    if n is not None:
        text = torch.cat([text, n.reshape(c * m, -1).to(device=first.device, dtype=dtype)])
    for start in starts:
        f = first if start == 0 else _check_images(image_features[start : start + batch_size])
        s_pos, s_neg = _sims_joint(_cast_images(f, dtype), text, c, m)
        if with_pred:
            preds.append(s_pos.argmax(dim=1))
        s_local = None
        if any(spec.needs_local for spec in specs):
            s_local = _local_sims(local_features[start : start + batch_size], text[:c], f.shape[0])
        for spec in specs:
            args = (s_pos, s_neg, t, s_local) if spec.needs_local else (s_pos, s_neg, t)
            parts[spec.name].append(spec.fn(*args))
    scores = {name: torch.cat(chunks) for name, chunks in parts.items()}
    return (torch.cat(preds) if with_pred else None), scores
