"""The fast encodings of large prompt banks against `encode_text` on full-length prompts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from negprompt import csp, textbank

SENTENCES = ["", "a photo of the nice ice cream cone.", "chair", "the good old weathered fence post", "word " * 100,
             "a close-up photo of the nice dog.", "x y", "the {} of a thing"]  # fmt: skip
"""Several lengths, an empty sentence and one longer than the context (the tokenizer truncates it)."""
WORDS = ["chair", "sea anemone", "a", "long-tailed tit", "st.", "AT&T", "café", "o'clock", "x  y", "3-D", "children's",
         "Ångström", "<b>bold</b>", "word " * 80 + "end", "ice cream", "dark object", "9"]  # fmt: skip
"""Words the shortcut takes, and words it must leave to the plain path (punctuation at an edge,
HTML characters, non-ASCII, repeated spaces, longer than the context)."""


def _plain(backbone, sentences):
    with torch.no_grad():
        return backbone.model.encode_text(backbone.tokenizer(sentences)).float()


def test_cut_encoding_equals_the_full_length_encoding(tiny_backbone, monkeypatch):
    """Sorted by length, each batch cut to its longest: `encode_text` at full length, in float64.

    In float64 the two computations differ by rounding far below float32's resolution, so the float32
    results agree to a few units in the last place."""
    backbone = copy.deepcopy(tiny_backbone)
    backbone.model.double()
    assert textbank._cut_supported(backbone)
    fast = textbank.encode_sentences(backbone, SENTENCES, batch_size=3, progress=False, tokenize_chunk=5)
    plain = _plain(backbone, SENTENCES)
    assert fast.dtype == torch.float32 and fast.shape == plain.shape
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-6, atol=1e-7)
    # a tower the cut does not support is encoded at full length, in order
    monkeypatch.setattr(textbank, "_cut_supported", lambda backbone: False)
    assert torch.equal(textbank.encode_sentences(backbone, SENTENCES, batch_size=3, progress=False), plain)


def test_word_tokens_joined_to_the_template_are_the_prompts_tokens(tiny_backbone):
    """For every word the shortcut takes, its tokens between the template's equal the tokenizer's."""
    tok = tiny_backbone.tokenizer
    taken = [w for w in WORDS if textbank.joins_exactly(w)]
    assert set(WORDS) - set(taken) == {"st.", "AT&T", "café", "x  y", "Ångström", "<b>bold</b>"}
    for template in csp.NOUN_TEMPLATES + csp.ADJ_TEMPLATES:
        pre, post = textbank.split_template(template)
        for w in taken:
            joined = (
                [tok.sot_token_id] + tok.encode(pre) + tok.encode(w) + tok.encode(post) + [tok.eot_token_id]
            )
            full = tok([template.format(w)])[0]
            if len(joined) <= tok.context_length:
                assert full[: len(joined)].tolist() == joined and not full[len(joined) :].any(), (template, w)
    for bad in ("{}s", "x{}", "{} and {}", "{}\u00e9", "{x}"):
        assert textbank.split_template(bad) is None


def test_template_tokens_are_the_tokenizers_and_the_features_encode_texts(tiny_backbone, monkeypatch):
    """Word and template tokens joined: the tokenizer's ids for every prompt; features: `encode_text`."""
    templates = csp.NOUN_TEMPLATES + ("{}s", "a {} and more")
    prompts = [t.format(w) for w in WORDS for t in templates]
    whole = []
    tokenize = textbank._tokenize
    monkeypatch.setattr(
        textbank, "_tokenize", lambda tok, s, *a: whole.append(len(s)) or tokenize(tok, s, *a)
    )
    tokens = textbank.template_tokens(tiny_backbone.tokenizer, WORDS, templates)
    assert torch.equal(tokens.long(), tiny_backbone.tokenizer(prompts))
    # tokenised whole: the 7 words the join leaves out, in the 9 templates it splits, and "{}s" for all 17
    assert whole == [7 * 9 + 17]
    fast = textbank.encode_template_bank(tiny_backbone, WORDS, templates, batch_size=4, progress=False)
    plain = _plain(tiny_backbone, prompts).view(len(WORDS), len(templates), -1)
    assert fast.shape == plain.shape
    assert (fast - plain).abs().max() < 1e-5 * plain.abs().max()
    # another kind of tokenizer: every prompt tokenised whole, the same ids
    monkeypatch.setattr(textbank, "_fast_tokenizer", lambda tok: False)
    assert torch.equal(
        textbank.template_tokens(tiny_backbone.tokenizer, WORDS, templates).long(),
        tiny_backbone.tokenizer(prompts),
    )


def test_ensemble_bank_uses_the_template_encoding(tiny_backbone):
    """CSP's ensembles: the mean of the raw features of each word's prompts, normalised."""
    words = ["chair", "AT&T", "sea anemone"]
    bank = csp.encode_ensemble(tiny_backbone, words, csp.ADJ_TEMPLATES, cache_dir=None, progress=False)
    plain = (
        _plain(tiny_backbone, [t.format(w) for w in words for t in csp.ADJ_TEMPLATES])
        .view(3, 4, -1)
        .mean(dim=1)
    )
    want = torch.nn.functional.normalize(plain, dim=-1).numpy()
    np.testing.assert_allclose(bank.astype(np.float32), want, atol=2e-3)  # float16 storage


@pytest.mark.parametrize("n", [1, 5])
def test_one_word_and_small_batches(tiny_backbone, n):
    words = WORDS[:n]
    fast = textbank.encode_template_bank(tiny_backbone, words, ("{}",), batch_size=1, progress=False)
    plain = _plain(tiny_backbone, words)
    assert (fast[:, 0] - plain).abs().max() < 1e-5 * plain.abs().max()
