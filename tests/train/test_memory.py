"""The stage-2 memory estimate: its formula, and a refusal that gives the estimate and a fitting M."""

from __future__ import annotations

import pytest

from negprompt.train.memory import GiB, MemoryEstimateError, check_stage2_memory, stage2_bytes

TOWER = {"n_ctx": 16, "name_tokens": 3, "width": 512, "layers": 12, "heads": 8}


def test_the_estimate_follows_its_formula_and_grows_linearly_in_m():
    t = 2 + 16 + 3
    per_layer = 16 * t * 512 + 2 * 8 * t * t
    expected = 4 * 100 * 10 * 12 * per_layer + 16 * 10 * 16 * 512
    assert stage2_bytes(100, 10, **TOWER) == expected
    one = stage2_bytes(100, 1, **TOWER)
    assert stage2_bytes(100, 1000, **TOWER) == pytest.approx(1000 * one, rel=1e-9)


def test_a_run_that_fits_passes_and_returns_the_estimate():
    need = check_stage2_memory(
        n_classes=100, class_subset_size=None, n_neg=2, **TOWER, device="cpu", free=64 * int(GiB)
    )
    assert need == stage2_bytes(100, 2, **TOWER)


def test_a_huge_m_is_refused_with_the_estimate_and_the_largest_m_that_fits():
    free = 8 * int(GiB)
    with pytest.raises(MemoryEstimateError) as err:
        check_stage2_memory(
            n_classes=100, class_subset_size=None, n_neg=100_000, **TOWER, device="cpu", free=free
        )
    need = stage2_bytes(100, 100_000, **TOWER) / GiB
    fits = int(free // stage2_bytes(100, 1, **TOWER))
    message = str(err.value)
    assert f"about {need:.1f} GiB" in message and "8.0 GiB are free" in message
    assert f"use --n-neg {fits} or less" in message
    assert stage2_bytes(100, fits, **TOWER) <= free < stage2_bytes(100, fits + 1, **TOWER)


def test_a_class_subset_lowers_the_estimate():
    whole = check_stage2_memory(
        n_classes=1000, class_subset_size=None, n_neg=4, **TOWER, device="cpu", free=10**15
    )
    subset = check_stage2_memory(
        n_classes=1000, class_subset_size=100, n_neg=4, **TOWER, device="cpu", free=10**15
    )
    assert subset < whole / 9
