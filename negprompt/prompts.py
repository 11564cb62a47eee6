"""Learnable prompt contexts and their exact, truncated encoding through a frozen CLIP text tower.

A prompt is ``[SOS] v_1 … v_L [class-name tokens] [EOT]`` (no period): the L context vectors replace
token embeddings, the class-name tokens stay fixed. Positive prompts use one context shared by all
classes (or one per class); the M negative contexts are shared by all classes, so they pair with any
list of class names, including names never seen in training (open vocabulary).

The text transformer is causal and the feature is read at the EOT token, so cutting every sequence
right after its EOT token gives the same feature as the full 77-token sequence (up to float rounding)
at a fraction of the cost. Prompts are grouped by length and each group runs at its own length.
The default mode, ``prefix``, also computes each context's ``[SOS] + context`` states once and runs
only the class-name and EOT tokens per prompt (:mod:`negprompt.prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from negprompt import prefix as _prefix
from negprompt.backbone import Backbone
from negprompt.data.names import clashes

ENCODE_MODES = ("prefix", "length", "pad", "full")
"""``prefix``: shared ``[SOS] + context`` states computed once per context, then the name and EOT
tokens grouped by length (fastest, exact; falls back to ``length`` for unsupported towers);
``length``: group prompts by length, each group cut after its EOT (exact);
``pad``: one batch cut after the longest prompt's EOT; ``full``: the model's full context length."""


class ClassNames:
    """A list of class names tokenised once for prompt encoding.

    Attributes:
        names: the class names, ``C`` of them.
        lengths: ``[C]`` number of name tokens of each class.
        suffix: ``[C, S, W]`` frozen token embeddings of ``name tokens + EOT + padding``, where
            ``S = context_length - 1 - n_ctx``.
    """

    def __init__(self, encoder: TextEncoder, names: Sequence[str], n_ctx: int, unique: bool = True):
        names = [str(n).strip() for n in names]
        if not names:
            raise ValueError("the class-name list is empty: give at least one class name")
        if any(not n for n in names):
            raise ValueError(f"empty class name at position {[i for i, n in enumerate(names) if not n][0]}")
        self.names = names
        self.n_ctx = n_ctx
        room = encoder.context_length - 2 - n_ctx  # SOS, context, name, EOT
        if room < 1:
            raise ValueError(f"a context of {n_ctx} tokens leaves no room for class names")
        same = clashes(names) if unique else []
        if same:
            raise ValueError(
                "class names that read the same to the prompts (case, '_', Unicode NFC, whitespace): "
                + "; ".join(" and ".join(repr(names[i]) for i in g) for g in same)
                + "; rename them so that each class gets its own prompt"
            )
        ids = []
        for name in names:
            tokens = encoder.tokenizer.encode(name)[:room]
            ids.append(tokens + [encoder.eot_id])
        cut = clashes(names, [tuple(t) for t in ids]) if unique else []
        if cut:
            raise ValueError(
                f"class names that differ only after the first {room} tokens the context leaves them "
                f"({encoder.context_length} tokens − {n_ctx} context tokens − 2): "
                + "; ".join(" and ".join(repr(names[i]) for i in g) for g in cut)
                + "; their prompts would be identical: shorten them so they differ early, or use fewer "
                "context tokens"
            )
        self.lengths = torch.tensor([len(t) - 1 for t in ids], dtype=torch.long)
        width = encoder.context_length - 1 - n_ctx
        padded = torch.zeros(len(ids), width, dtype=torch.long)
        for i, t in enumerate(ids):
            padded[i, : len(t)] = torch.tensor(t)
        with torch.no_grad():
            self.suffix = encoder.token_embedding(padded.to(encoder.device)).float()

    def __len__(self) -> int:
        return len(self.names)


class TextEncoder:
    """The frozen text tower of a backbone, fed with context vectors instead of token ids."""

    def __init__(self, backbone: Backbone):
        tower = backbone.text_tower
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
        missing = [a for a in needed if not hasattr(tower, a)]
        if missing:
            raise ValueError(
                f"{backbone.name}: text tower lacks {missing}; only CLIP-style text towers are supported"
            )
        if getattr(tower, "attn_mask", None) is None or getattr(tower, "text_pool_type", "argmax") not in (
            "argmax",
            "eos",
        ):
            raise ValueError(
                f"{backbone.name}: the text tower is not causal with EOT pooling, so prompt contexts cannot be "
                "encoded exactly; use a CLIP-style model (ViT-B-16, ViT-B-32, RN50, …)"
            )
        self.backbone = backbone
        self.tower = tower
        self.tokenizer = backbone.tokenizer
        self.token_embedding = tower.token_embedding
        self.context_length = int(tower.positional_embedding.shape[0])
        self.width = int(tower.positional_embedding.shape[1])
        self.device = backbone.device
        self.sos_id = int(self.tokenizer.sot_token_id)
        self.eot_id = int(self.tokenizer.eot_token_id)
        self._sos = None
        self.shared_prefix = _prefix.supports(tower)
        self.bucket: int | None = None  # suffix lengths rounded up to a multiple (None: 1 CPU, 4 CUDA)
        self.compile: str | None = None  # torch.compile mode of the suffix pass ("reduce-overhead", …)
        self._weights: dict = {}
        self._plans: dict = {}

    def embed(self, text: str) -> torch.Tensor:
        """Token embeddings ``[n, W]`` of a text, without SOS/EOT (e.g. the context init "a photo of a")."""
        ids = torch.tensor(self.tokenizer.encode(text), dtype=torch.long, device=self.device)
        with torch.no_grad():
            return self.token_embedding(ids).float()

    def class_names(self, names: Sequence[str], n_ctx: int, unique: bool = True) -> ClassNames:
        """Tokenise a class-name list for contexts of ``n_ctx`` vectors.

        With ``unique`` (classes), names that read the same to the prompts, or that the context
        truncates to the same tokens, raise `ValueError` naming them; a word bank passes False.
        """
        return ClassNames(self, names, n_ctx, unique)

    def encode(
        self,
        ctx: torch.Tensor,
        classes: ClassNames,
        class_idx: torch.Tensor,
        mode: str = "length",
    ) -> torch.Tensor:
        """Encode prompts ``[SOS] ctx[p] name[class_idx[p]] [EOT]``.

        Args:
            ctx: ``[P, L, W]`` context vectors, one context per prompt.
            classes: tokenised class names (``classes.n_ctx == L``).
            class_idx: ``[P]`` class of each prompt.
            mode: one of :data:`ENCODE_MODES`.

        Returns:
            ``[P, D]`` L2-normalised text features (float32), differentiable w.r.t. ``ctx``.
        """
        if mode not in ENCODE_MODES:
            raise ValueError(f"unknown encode mode {mode!r}; choose one of {ENCODE_MODES}")
        if ctx.dim() != 3 or ctx.shape[1] != classes.n_ctx or ctx.shape[2] != self.width:
            raise ValueError(
                f"context shape {tuple(ctx.shape)} does not fit [P, {classes.n_ctx}, {self.width}]"
            )
        class_idx = class_idx.to(torch.long).cpu()
        if mode == "prefix":  # every prompt its own context: exact, nothing shared
            return self.encode_shared(ctx, torch.arange(ctx.shape[0]), classes, class_idx)
        lengths = classes.lengths[class_idx]
        if mode != "length":
            return self._encode_group(ctx, classes, class_idx, lengths, full=mode == "full")
        out = torch.empty(ctx.shape[0], self.backbone.embed_dim, device=ctx.device, dtype=torch.float32)
        for n in torch.unique(lengths).tolist():
            rows = (lengths == n).nonzero(as_tuple=True)[0]
            rows_dev = rows.to(ctx.device)
            out[rows_dev] = self._encode_group(
                ctx[rows_dev], classes, class_idx[rows], lengths[rows], full=False
            )
        return out

    def sos_embedding(self) -> torch.Tensor:
        """``[1, W]`` the start-of-text token's embedding (computed once)."""
        if self._sos is None:
            with torch.no_grad():
                self._sos = self.token_embedding(torch.tensor([self.sos_id], device=self.device)).float()
        return self._sos

    def encode_shared(
        self, ctx_sets: torch.Tensor, ctx_id: torch.Tensor, classes: ClassNames, class_idx: torch.Tensor
    ) -> torch.Tensor:
        """Encode prompts ``[SOS] ctx_sets[ctx_id[p]] name[class_idx[p]] [EOT]``, each context's prefix once.

        Args:
            ctx_sets: ``[K, L, W]`` distinct contexts. ctx_id: ``[P]`` context of each prompt.
            class_idx: ``[P]`` class of each prompt.

        Returns:
            ``[P, D]`` L2-normalised float32 features (see :mod:`negprompt.prefix`); towers the
            shared-prefix path does not support fall back to mode ``length``.
        """
        if ctx_sets.dim() != 3 or ctx_sets.shape[1] != classes.n_ctx or ctx_sets.shape[2] != self.width:
            raise ValueError(
                f"context shape {tuple(ctx_sets.shape)} does not fit [K, {classes.n_ctx}, {self.width}]"
            )
        if not self.shared_prefix:
            return self.encode(ctx_sets[ctx_id.to(ctx_sets.device)], classes, class_idx, "length")
        return _prefix.encode_shared(self, ctx_sets, ctx_id, classes, class_idx)

    def _encode_group(self, ctx, classes, class_idx, lengths, full: bool) -> torch.Tensor:
        n_ctx = classes.n_ctx
        span = classes.suffix.shape[1] if full else int(lengths.max()) + 1
        seq = 1 + n_ctx + span
        tower = self.tower
        cast = (
            tower.transformer.get_cast_dtype() if hasattr(tower.transformer, "get_cast_dtype") else ctx.dtype
        )
        self.sos_embedding()
        p = ctx.shape[0]
        suffix = classes.suffix[class_idx.to(classes.suffix.device), :span].to(ctx.device)
        x = torch.cat([self._sos.to(ctx.device).expand(p, 1, -1), ctx.float(), suffix], dim=1).to(cast)
        x = x + tower.positional_embedding[:seq].to(cast)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:seq, :seq])
        x = tower.ln_final(x)
        eot = (1 + n_ctx + lengths).to(x.device)
        x = x[torch.arange(p, device=x.device), eot]
        proj = tower.text_projection
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x.float(), dim=-1)


@dataclass
class PromptConfig:
    """Shape and initialisation of the learnable contexts (METHOD.md, Model)."""

    n_ctx: int = 4
    init: str = "a photo of a"
    class_specific: bool = False
    n_neg: int = 2
    neg_noise: float = 1e-3


class PromptLearner(nn.Module):
    """Learnable positive context and ``M`` negative contexts, paired with any class-name list.

    Parameters:
        pos_ctx: ``[L, W]`` shared positive context, or ``[C, L, W]`` class-specific.
        neg_ctx: ``[M, L, W]`` negative contexts shared by all classes.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        config: PromptConfig | None = None,
        n_classes: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.config = config = config or PromptConfig()
        self.__dict__["encoder"] = encoder  # not a submodule: the tower is frozen and not ours
        gen = torch.Generator().manual_seed(seed)
        width = encoder.width
        if config.class_specific:
            if not n_classes:
                raise ValueError("class-specific contexts need n_classes")
            pos = torch.randn(n_classes, config.n_ctx, width, generator=gen) * 0.02
        elif config.init:
            pos = encoder.embed(config.init).cpu()
            if pos.shape[0] != config.n_ctx:
                raise ValueError(
                    f"init text {config.init!r} has {pos.shape[0]} tokens but n_ctx={config.n_ctx}; "
                    "make them match or set init to '' for random init"
                )
        else:
            pos = torch.randn(config.n_ctx, width, generator=gen) * 0.02
        self.pos_ctx = nn.Parameter(pos.clone().to(encoder.device))
        self.neg_ctx = nn.Parameter(torch.zeros(config.n_neg, config.n_ctx, width, device=encoder.device))
        self.init_negatives(seed=seed)

    @torch.no_grad()
    def init_negatives(self, noise: float | None = None, seed: int = 0) -> None:
        """Set each negative context to the positive context plus noise (stage-2 start).

        Noise is uniform in ``[-a, a]`` with ``a = noise × std(positive context)``, kept in fp32 so the
        ``M`` copies really differ. Class-specific positives start from their mean over classes.
        """
        noise = self.config.neg_noise if noise is None else noise
        base = self.pos_ctx.mean(0) if self.config.class_specific else self.pos_ctx
        gen = torch.Generator().manual_seed(seed + 1)
        scale = noise * float(base.std())
        u = torch.rand(self.neg_ctx.shape, generator=gen) * 2 - 1
        self.neg_ctx.copy_(base.unsqueeze(0).cpu() + scale * u)

    def class_names(self, names: Sequence[str], unique: bool = True) -> ClassNames:
        """Tokenise a class-name list for these contexts (any list: open vocabulary); ``unique``: see
        `TextEncoder.class_names`."""
        if self.config.class_specific and len(names) != self.pos_ctx.shape[0]:
            raise ValueError(
                f"class-specific contexts were learned for {self.pos_ctx.shape[0]} classes and cannot be "
                f"paired with {len(names)} names; use shared contexts for open-vocabulary transfer"
            )
        return self.encoder.class_names(names, self.config.n_ctx, unique)

    def positive_features(self, classes: ClassNames, idx: torch.Tensor | None = None, mode: str = "prefix"):
        """``[C', D]`` positive text features of classes ``idx`` (default all)."""
        idx = torch.arange(len(classes)) if idx is None else idx.cpu()
        if mode == "prefix":
            if self.config.class_specific:  # one prefix per class
                ctx = self.pos_ctx[idx.to(self.pos_ctx.device)]
                return self.encoder.encode_shared(ctx, torch.arange(len(idx)), classes, idx)
            ctx, ids = self.pos_ctx.unsqueeze(0), torch.zeros(len(idx), dtype=torch.long)
            return self.encoder.encode_shared(ctx, ids, classes, idx)
        ctx = self.pos_ctx[idx.to(self.pos_ctx.device)] if self.config.class_specific else None
        if ctx is None:
            ctx = self.pos_ctx.unsqueeze(0).expand(len(idx), -1, -1)
        return self.encoder.encode(ctx, classes, idx, mode)

    def negative_features(self, classes: ClassNames, idx: torch.Tensor | None = None, mode: str = "prefix"):
        """``[C', M, D]`` negative text features of classes ``idx`` (default all)."""
        idx = torch.arange(len(classes)) if idx is None else idx.cpu()
        m = self.neg_ctx.shape[0]
        if mode == "prefix":  # the M contexts' prefixes once, shared by all classes
            ids = torch.arange(m).repeat(len(idx))
            feats = self.encoder.encode_shared(self.neg_ctx, ids, classes, idx.repeat_interleave(m))
            return feats.view(len(idx), m, -1)
        ctx = (
            self.neg_ctx.unsqueeze(0)
            .expand(len(idx), -1, -1, -1)
            .reshape(len(idx) * m, *self.neg_ctx.shape[1:])
        )
        feats = self.encoder.encode(ctx, classes, idx.repeat_interleave(m), mode)
        return feats.view(len(idx), m, -1)

    def context_tokens(self, k: int = 5) -> dict:
        """Nearest vocabulary tokens of every context vector (class-specific: of the class mean)."""
        pos = self.pos_ctx.mean(0) if self.config.class_specific else self.pos_ctx
        return {
            "positive": nearest_tokens(self.encoder, pos, k),
            "negative": [nearest_tokens(self.encoder, ctx, k) for ctx in self.neg_ctx],
        }

    def forward(self, classes: ClassNames, mode: str = "prefix"):
        """``(pos [C, D], neg [C, M, D])`` for every class of ``classes``."""
        return self.positive_features(classes, mode=mode), self.negative_features(classes, mode=mode)


@torch.no_grad()
def nearest_tokens(encoder: TextEncoder, ctx: torch.Tensor, k: int = 5) -> list[list[dict]]:
    """The ``k`` vocabulary tokens nearest (cosine) to each context vector: a way to read a context.

    Args:
        ctx: ``[L, W]`` context vectors.

    Returns:
        One list per vector of ``{"token", "similarity"}``, most similar first.
    """
    vocab = F.normalize(encoder.token_embedding.weight.float(), dim=-1)
    sims = F.normalize(ctx.detach().float().to(vocab.device), dim=-1) @ vocab.T
    top = sims.topk(k, dim=-1)
    decoder = getattr(encoder.tokenizer, "decoder", {})
    out = []
    for values, ids in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        out.append(
            [
                {"token": decoder.get(i, str(i)).replace("</w>", ""), "similarity": round(v, 4)}
                for v, i in zip(values, ids, strict=True)
            ]
        )
    return out
