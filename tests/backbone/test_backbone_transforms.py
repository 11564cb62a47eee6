"""A backbone's precision and its training augmentation, checked on what they produce."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from negprompt.backbone import TINY_MODEL, load_backbone


def _tiny(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random-weights warning
        return load_backbone(TINY_MODEL, "none", **kwargs)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)]
)
def test_the_weights_are_held_in_the_asked_precision(precision, dtype):
    backbone = _tiny(precision=precision)
    assert {p.dtype for p in backbone.model.parameters()} == {dtype}
    assert backbone.describe()["precision"] == precision


def test_the_training_augmentation_pads_by_4_crops_and_normalises():
    tiny_backbone = _tiny()
    transform = tiny_backbone.train_transform
    norm = transform.transforms[-1]
    mean, std = torch.tensor(norm.mean), torch.tensor(norm.std)
    size = tiny_backbone.image_size
    image = Image.new("RGB", (size, size), (200, 100, 50))
    inside = (torch.tensor([200, 100, 50]) / 255 - mean) / std
    padding = (0 - mean) / std
    bands = []
    for seed in range(40):
        torch.manual_seed(seed)
        x = transform(image)
        assert x.shape == (3, size, size)
        torch.testing.assert_close(x[:, size // 2, size // 2], inside, atol=1e-5, rtol=0)
        padded_rows = [bool(torch.allclose(x[:, r, size // 2], padding, atol=1e-5)) for r in range(size)]
        bands.append(padded_rows.index(False))  # rows of padding at the top
    assert max(bands) == 4 and min(bands) == 0


def test_the_training_augmentation_resizes_bicubically_like_the_authors():
    from torchvision import transforms as T

    backbone = _tiny()
    norm = backbone.train_transform.transforms[-1]
    size = backbone.image_size
    gradient = Image.radial_gradient("L").resize((3 * size, 2 * size)).convert("RGB")  # needs resizing
    reference = T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomCrop(size, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(norm.mean, norm.std),
        ]
    )
    for seed in range(3):
        torch.manual_seed(seed)
        got = backbone.train_transform(gradient)
        torch.manual_seed(seed)
        torch.testing.assert_close(got, reference(gradient), atol=1e-6, rtol=0)
