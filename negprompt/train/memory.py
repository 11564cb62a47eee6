"""A memory estimate of stage 2 before it starts, so that a huge ``--n-neg`` is refused, not run.

A stage-2 step encodes the negative prompts of S classes (S = ``class_subset_size``, else all C)
with every one of the M negative contexts, and keeps the text tower's activations for the backward
pass. Per prompt of T tokens, one residual block of width W with H heads keeps about

    A = 16·T·W + 2·H·T²   values  (LayerNorm inputs, q/k/v, attention output, the 4W MLP twice,
                                    the residuals; attention weights before and after softmax),

so a step holds about ``4 bytes · S·M · layers · A`` of activations, plus ``4 · 4 · M·n_ctx·W`` for
the negative contexts with their gradient and two Adam moments. This is an upper-end estimate of
the ``length`` encoding (the shared-prefix encoding keeps less); it is compared with the memory the
device has free, and a run that would not fit is refused with the estimate and the largest M that
fits.
"""

from __future__ import annotations

import os

GiB = float(1 << 30)


class MemoryEstimateError(ValueError):
    """A setting (``--n-neg``) whose estimated memory is more than the device has free."""


def stage2_bytes(
    n_prompts_classes: int, n_neg: int, n_ctx: int, name_tokens: int, width: int, layers: int, heads: int
) -> int:
    """Estimated bytes of one stage-2 step (see the module docstring for the formula)."""
    tokens = 2 + n_ctx + name_tokens
    per_prompt_layer = 16 * tokens * width + 2 * heads * tokens * tokens
    activations = 4 * n_prompts_classes * n_neg * layers * per_prompt_layer
    contexts = 4 * 4 * n_neg * n_ctx * width
    return int(activations + contexts)


def free_bytes(device: str) -> int | None:
    """Free memory of ``device``: CUDA's free memory, else the system's available memory (None if unknown)."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_stage2_memory(
    *,
    n_classes: int,
    class_subset_size: int | None,
    n_neg: int,
    n_ctx: int,
    name_tokens: int,
    width: int,
    layers: int,
    heads: int,
    device: str,
    free: int | None = None,
) -> int:
    """Refuse a stage 2 whose estimate (`stage2_bytes`) exceeds the free memory; returns the estimate.

    Raises:
        MemoryEstimateError: naming the estimate, the free memory and the largest M that fits.
    """
    classes = min(n_classes, class_subset_size or n_classes)
    need = stage2_bytes(classes, n_neg, n_ctx, name_tokens, width, layers, heads)
    free = free_bytes(device) if free is None else free
    if free is None or need <= free:
        return need
    per_neg = stage2_bytes(classes, 1, n_ctx, name_tokens, width, layers, heads)
    fits = max(0, int(free // per_neg))
    raise MemoryEstimateError(
        f"--n-neg {n_neg}: stage 2 would need about {need / GiB:.1f} GiB on {device} ({classes} classes × "
        f"{n_neg} negative prompts of about {2 + n_ctx + name_tokens} tokens through {layers} text layers), "
        f"but {free / GiB:.1f} GiB are free; use --n-neg {fits} or less"
        + (", or --class-subset-size to encode fewer classes per step" if fits < 1 else "")
    )
