"""OpenOOD v1.5's ImageNet image lists: reading, errors with the layout, and an experiment on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from negprompt.data import imagenet_classes
from negprompt.data.openood import OPENOOD_FAR, OPENOOD_NEAR, openood_imagenet, read_imglist
from tests.conftest import write_images

NAMES = [c.name for c in imagenet_classes()]


def make_openood(root: Path, per_class: int = 4) -> Path:
    """A tiny OpenOOD layout: classes 0-3 as ID, 3 images per OOD set."""
    base = root / "openood"
    lists = base / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)
    for split in ("train", "test"):
        lines = []
        for c in range(4):
            folder = base / "images_largescale" / "imagenet_1k" / split / f"c{c}"
            for f in write_images(folder, per_class, seed=10 * c + (split == "test")):
                lines.append(f"{f.relative_to(base / 'images_largescale').as_posix()} {c}")
        (lists / f"{split}_imagenet.txt").write_text("\n".join(lines) + "\n")
    for i, (name, file) in enumerate({**OPENOOD_NEAR, **OPENOOD_FAR}.items()):
        top = base / ("images_classic" if name == "Textures" else "images_largescale")
        files = write_images(top / file[5:-4] / "x", 3, seed=100 + i)
        (lists / file).write_text("".join(f"./{f.relative_to(top).as_posix()} -1\n" for f in files))
    return root


def test_read_lists(tmp_path):
    root = make_openood(tmp_path)
    train, test, ood = openood_imagenet(root, NAMES, [2, 0])
    assert test.class_names == (NAMES[2], NAMES[0]) and sorted(set(test.labels)) == [0, 1]
    assert len(train) == len(test) == 8
    assert all(p.startswith("imagenet_1k/test/c2/") for p, y in zip(test.paths, test.labels) if y == 0)
    assert list(ood) == ["SSB-hard", "NINCO", "iNaturalist", "Textures", "OpenImage-O"]
    assert all(set(s.labels) == {-1} and len(s) == 3 for s in ood.values())
    assert ood["Textures"].root.name == "images_classic" and not ood["NINCO"].paths[0].startswith(".")
    assert list(openood_imagenet(root, NAMES, None, ["NINCO"])[2]) == ["NINCO"]
    with pytest.raises(ValueError, match="unknown OpenOOD set"):
        openood_imagenet(root, NAMES, None, ["SUN"])


def test_errors_print_the_layout(tmp_path):
    root = make_openood(tmp_path)
    lists = root / "openood" / "benchmark_imglist" / "imagenet"
    (lists / "test_ninco.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_ninco.txt not found(.|\n)*images_largescale"):
        openood_imagenet(root, NAMES)
    bad = tmp_path / "bad.txt"
    bad.write_text("a/b.jpg 1\nc/d.jpg\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'relative/path label'"):
        read_imglist(bad, tmp_path, "bad", NAMES)
    bad.write_text("a/b.jpg 1\n")
    with pytest.raises(FileNotFoundError, match=r"1 of 1 images of bad are missing(.|\n)*benchmark_imglist"):
        read_imglist(bad, tmp_path, "bad", NAMES)


def test_experiment_on_the_openood_lists(tmp_path, tiny_backbone):
    from negprompt.experiments import run_experiment
    from negprompt.rundir import load_run
    from tests.experiments.test_experiments_data import small

    root = make_openood(tmp_path / "data")
    config = small(data_root=root, benchmark="openood", classes=3, cache_dir=str(tmp_path / "cache"),
                   ood_sets=["SSB-hard", "Textures"])  # fmt: skip
    run = load_run(run_experiment(config, tmp_path / "run", progress=False, backbone=tiny_backbone))
    assert run.config["data"]["ood"] == ["SSB-hard", "Textures"]
    assert run.config["experiment"]["data"]["benchmark"] == "OpenOOD v1.5 ImageNet-1k"
    assert set(run.metrics["dataset"]) == {"SSB-hard", "Textures", "mean"}
    text = (tmp_path / "run" / "log.txt").read_text()
    assert "FPR@95" in text and "(OOD positive, OpenOOD v1.5)" in text and "zeroshot (mcm): FPR95" in text
