"""Exact, fast text features of large prompt banks (CSP's ≈ 838,000 template × word prompts).

CLIP's text tower is causal and its feature is read at the end-of-text (EOT) token, so the padding
after EOT changes nothing: the prompts are sorted by length and each batch runs through the tower cut
to its longest prompt (`encode_tokens`; a CSP prompt has about 9 tokens, not 77). This equals
``model.encode_text`` on the full 77-token prompts up to float rounding.

Tokenising is the other cost (CLIP's tokenizer cleans and splits every string in Python). For a bank
of ``template.format(word)`` prompts, `encode_template_bank` tokenises each word and each template
once and joins their tokens. That is exact when CLIP's tokenizer splits the prompt at the word's
edges, which holds when the template has a space (or nothing) before ``{}`` and a space, punctuation
(or nothing) after it, and the word starts and ends with a letter or digit, is plain ASCII without
``&``/``<`` (HTML unescaping) and without repeated spaces (`joins_exactly`, `split_template`); other
words and templates, prompts longer than the context, and tokenizers of another kind are tokenised
whole.

(Running each template's prefix once and only the words' suffixes after it, as `negprompt.prefix`
does for learned contexts, was measured slower on `negprompt-mini` on a CPU: its prompts are short
and the tower narrow; ``benchmarks/RESULTS.md``.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from negprompt.backbone import Backbone
from negprompt.progress import tqdm

__all__ = [
    "encode_sentences",
    "encode_template_bank",
    "encode_tokens",
    "joins_exactly",
    "split_template",
    "template_tokens",
]

_SAFE_WORD = re.compile(r"^[A-Za-z0-9](?:[ -%'-;=?-~]*[A-Za-z0-9])?$")
"""Printable ASCII without ``&`` and ``<``, a letter or digit at both ends."""
_SAFE_TEXT = re.compile(r"^[ -%'-;=?-~]*$")


def _cut_supported(backbone: Backbone) -> bool:
    """Whether the text tower is open_clip's causal CLIP tower pooled at the end-of-text token."""
    model = backbone.model
    return (
        not hasattr(model, "text")
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "argmax") in ("argmax", "eos")
    )


def _project(model, x: Tensor) -> Tensor:
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


def _tokenize(tokenizer, sentences: Sequence[str], chunk: int = 16384) -> Tensor:
    """``[N, context]`` int32 token ids of ``sentences`` (tokenised ``chunk`` at a time)."""
    parts = [
        tokenizer(list(sentences[i : i + chunk])).to(torch.int32) for i in range(0, len(sentences), chunk)
    ]
    return torch.cat(parts)


def encode_tokens(
    backbone: Backbone, tokens: Tensor, *, batch_size: int = 1024, progress: bool = True
) -> Tensor:
    """``[N, D]`` float32 unnormalised text features (``model.encode_text``) of token ids ``[N, context]``.

    Sorted by EOT position and batched, each batch cut to its longest prompt; towers of another shape
    (`_cut_supported`) are encoded at full length.
    """
    from open_clip.transformer import text_global_pool

    model, device = backbone.model, backbone.device
    out = torch.empty(len(tokens), backbone.embed_dim, dtype=torch.float32)
    cut = _cut_supported(backbone)
    eos = getattr(model, "text_eos_id", None)
    if cut:
        pooled_eos = getattr(model, "text_pool_type", "argmax") == "eos"
        ends = (tokens == eos).int().argmax(dim=-1) if pooled_eos else tokens.argmax(dim=-1)
        order = torch.argsort(ends, stable=True)
    else:
        order = torch.arange(len(tokens))
    with torch.no_grad():
        for i in tqdm(range(0, len(tokens), batch_size), desc="label bank", disable=not progress):
            rows = order[i : i + batch_size]
            batch = tokens[rows].long()
            if not cut:
                out[rows] = model.encode_text(batch.to(device)).float().cpu()
                continue
            length = int(ends[rows].max()) + 1
            batch = batch[:, :length].to(device)
            cast = model.transformer.get_cast_dtype()
            x = model.token_embedding(batch).to(cast) + model.positional_embedding[:length].to(cast)
            x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
            x = text_global_pool(model.ln_final(x), batch, model.text_pool_type, eos_token_id=eos)
            out[rows] = _project(model, x).float().cpu()
    return out


def encode_sentences(
    backbone: Backbone,
    sentences: Sequence[str],
    *,
    batch_size: int = 1024,
    progress: bool = True,
    tokenize_chunk: int = 16384,
) -> Tensor:
    """``[N, D]`` float32 unnormalised text features of ``sentences`` (``model.encode_text``), in order
    (`encode_tokens`)."""
    tokens = _tokenize(backbone.tokenizer, sentences, tokenize_chunk)
    return encode_tokens(backbone, tokens, batch_size=batch_size, progress=progress)


def split_template(template: str) -> tuple[str, str] | None:
    """``(pre, post)`` of a plain-ASCII template with one ``{}``, a space (or nothing) before it and a
    space, punctuation (or nothing) after it; else None (the template takes the plain path)."""
    rest = template.replace("{}", "", 1)
    if template.count("{}") != 1 or "{" in rest or "}" in rest or not _SAFE_TEXT.match(rest):
        return None
    pre, post = template.split("{}")
    if (pre and not pre.endswith(" ")) or (post and post[0] not in " .,;:!?"):
        return None
    return pre, post


def joins_exactly(word: str) -> bool:
    """Whether the word's own tokens, between a template's, are the prompt's tokens (module docstring)."""
    return bool(_SAFE_WORD.match(word)) and "  " not in word


def _fast_tokenizer(tokenizer) -> bool:
    """open_clip's CLIP tokenizer with its default clean-up (lower case; other clean-ups may drop text)."""
    from open_clip import tokenizer as T

    return (
        isinstance(tokenizer, T.SimpleTokenizer)
        and getattr(tokenizer, "clean_fn", None) is getattr(T, "_clean_lower", object())
        and getattr(tokenizer, "reduction_fn", None) is None
    )


def template_tokens(tokenizer, words: Sequence[str], templates: Sequence[str]) -> Tensor:
    """``[K·T, context]`` int32 token ids of ``template.format(word)``, word-major (K words × T templates).

    Each word and template tokenised once and joined where that is exact (module docstring); the
    other prompts tokenised whole.
    """
    context = int(tokenizer.context_length)
    out = torch.zeros(len(words) * len(templates), context, dtype=torch.int32)
    fast = _fast_tokenizer(tokenizer)
    ids = {w: tokenizer.encode(w) for w in dict.fromkeys(words) if joins_exactly(w)} if fast else {}
    whole: list[int] = []
    for t, template in enumerate(templates):
        parts = split_template(template) if fast else None
        if parts is None:
            whole += [k * len(templates) + t for k in range(len(words))]
            continue
        head = [tokenizer.sot_token_id] + tokenizer.encode(parts[0])
        tail = tokenizer.encode(parts[1]) + [tokenizer.eot_token_id]
        rows, joined = [], []
        for k, w in enumerate(words):
            word = ids.get(w)
            if word is None or len(head) + len(word) + len(tail) > context:
                whole.append(k * len(templates) + t)
            else:
                rows.append(k * len(templates) + t)
                joined.append(head + word + tail + [0] * (context - len(head) - len(word) - len(tail)))
        if rows:
            out[rows] = torch.tensor(joined, dtype=torch.int32)
    if whole:
        prompts = [templates[r % len(templates)].format(words[r // len(templates)]) for r in whole]
        out[whole] = _tokenize(tokenizer, prompts)
    return out


def encode_template_bank(
    backbone: Backbone,
    words: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 1024,
    progress: bool = True,
) -> Tensor:
    """``[K, T, D]`` float32 unnormalised features of ``template.format(word)`` for every word and template
    (`template_tokens`, then `encode_tokens`)."""
    tokens = template_tokens(backbone.tokenizer, words, templates)
    feats = encode_tokens(backbone, tokens, batch_size=batch_size, progress=progress)
    return feats.view(len(words), len(templates), -1)
