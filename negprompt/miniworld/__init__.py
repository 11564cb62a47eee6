"""The mini-world: a small, offline world of clothing, digits, coloured shapes and textures, with
captions, on which the bundled ``negprompt-mini`` CLIP model is pretrained and the mini presets run.

* :mod:`.concepts`: classes, synonyms and caption templates; captions state facts about an image.
* :mod:`.sources` / :mod:`.render`: Fashion-MNIST and digits; generated shapes and textures.
* :mod:`.world`: the pretraining pool and the held-out evaluation sets as arrays.
* :mod:`.pretrain`: the contrastive pretraining and the zero-shot evaluation.
"""

from .concepts import CLOTHING, DIGITS, TEXTURES
from .sources import MiniWorldDataError

__all__ = ["CLOTHING", "DIGITS", "TEXTURES", "MiniWorldDataError"]
