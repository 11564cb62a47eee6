"""Two gloo processes on CPU give the single-process feature cache, losses and context gradients."""

from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from negprompt.backbone import TINY_MODEL, load_backbone
from negprompt.data import image_folder
from negprompt.distributed import (
    DistInfo,
    ShardedTextFeatures,
    cleanup,
    get_info,
    init_distributed,
    shard_classes,
)
from negprompt.features import extract_features
from negprompt.prompts import PromptLearner, TextEncoder
from negprompt.train.config import TrainConfig
from negprompt.train.step import local_text_features, train_step
from tests.conftest import write_images

WORLD = 2
# Names of 1 to 6 tokens, so that the ranks' shares hold prompts of several lengths.
NAMES = [
    "ox",
    "tench",
    "great white shark",
    "American black bear",
    "Staffordshire Bull Terrier",
    "goldfish",
    "hen",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(worker, tmp_path: Path, *args) -> None:
    """Run ``worker(rank, tmp_path, *args)`` in WORLD spawned processes joined by gloo on loopback."""
    port = _free_port()
    mp.spawn(_entry, args=(worker, port, tmp_path, args), nprocs=WORLD, join=True)
    errors = sorted(tmp_path.glob("error-rank*.txt"))
    assert not errors, "\n".join(p.read_text() for p in errors)


def _entry(rank: int, worker, port: int, tmp_path: Path, args) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    from negprompt import distributed

    try:
        info = init_distributed("gloo", timeout_min=3)  # a loaded machine may start a rank slowly
        assert (info.rank, info.world) == (rank, WORLD)
        worker(rank, tmp_path, *args)
    except Exception:
        (tmp_path / f"error-rank{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        distributed.cleanup()


def _tiny():
    torch.manual_seed(0)  # every process builds the same random weights
    return load_backbone(TINY_MODEL, "none")


# --------------------------------------------------------------------------- feature cache


def _image_set(root: Path):
    write_images(root / "a", 6, seed=1)
    write_images(root / "b", 7, seed=2)
    (root / "b" / "zz_broken.png").write_bytes(b"not an image")  # dropped, in the second shard
    return image_folder(root)


def _extract_worker(rank: int, tmp_path: Path, batch_size: int) -> None:
    from negprompt.distributed import extract_features_distributed

    extract_features_distributed(
        _tiny(),
        image_folder(tmp_path / "images"),
        cache_dir=tmp_path / "dist",
        batch_size=batch_size,
        progress=False,
        max_bad_fraction=0.2,
    )


def test_sharded_feature_cache_equals_the_single_process_cache(tmp_path):
    images = _image_set(tmp_path / "images")
    assert len(images) == 14  # shards [0, 7) and [7, 14): batches of 7 are the same in both runs
    single = extract_features(
        _tiny(), images, cache_dir=tmp_path / "single", batch_size=7, progress=False, max_bad_fraction=0.2
    )
    _run(_extract_worker, tmp_path, 7)
    entries = [p.name for p in (tmp_path / "dist").iterdir()]
    assert entries == [single.path.name]  # one entry under the same key, no shards left behind
    merged = tmp_path / "dist" / single.path.name
    for name in ("features.npy", "labels.npy", "paths.json", "meta.json"):
        assert (merged / name).read_bytes() == (single.path / name).read_bytes(), name
    assert len(single) == 13 and single.meta["dropped"] == ["b/zz_broken.png"]


def _extract_twice_worker(rank: int, tmp_path: Path) -> None:
    from negprompt.distributed import extract_features_distributed

    images = image_folder(tmp_path / "images")
    first = extract_features_distributed(_tiny(), images, cache_dir=tmp_path / "dist", progress=False)
    again = extract_features_distributed(_tiny(), images, cache_dir=tmp_path / "dist", progress=False)
    assert first.path == again.path
    np.save(tmp_path / f"rank{rank}.npy", np.asarray(again.features))


def test_every_rank_loads_the_merged_entry_and_reuses_it(tmp_path):
    write_images(tmp_path / "images" / "a", 5, seed=3)  # odd size and a batch size that does not align
    _run(_extract_twice_worker, tmp_path)
    single = extract_features(
        _tiny(), image_folder(tmp_path / "images"), cache_dir=tmp_path / "single", progress=False
    )
    for rank in range(WORLD):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), single.features, atol=2e-3)


def test_a_rank_failure_is_reported_on_every_rank(tmp_path):
    write_images(tmp_path / "images" / "a", 4, seed=4)
    for i in range(2):  # the second shard is all unreadable: over the 1% default
        (tmp_path / "images" / "a" / f"zz{i}.png").write_bytes(b"broken")
    with pytest.raises(Exception, match="process"):
        _run(_extract_worker, tmp_path, 64)
    for rank in range(WORLD):
        assert "distributed feature extraction failed" in (tmp_path / f"error-rank{rank}.txt").read_text()


# --------------------------------------------------------------------------- sharded prompt encoding


def _setup(stage: int):
    backbone = _tiny()
    learner = PromptLearner(TextEncoder(backbone))
    with torch.no_grad():  # contexts away from their init, and different negatives
        learner.pos_ctx.add_(
            torch.randn(learner.pos_ctx.shape, generator=torch.Generator().manual_seed(1)) * 0.1
        )
        learner.init_negatives(noise=0.5, seed=3)
    learner.pos_ctx.requires_grad_(stage == 1)
    learner.neg_ctx.requires_grad_(stage == 2)
    classes = learner.class_names(NAMES)
    gen = torch.Generator().manual_seed(2)
    features = torch.nn.functional.normalize(torch.randn(8, backbone.embed_dim, generator=gen), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 2])
    with torch.no_grad():
        pos_text = learner.positive_features(classes)
    logit_scale = float(backbone.model.logit_scale)
    return learner, classes, features, labels, pos_text, logit_scale


def _step(stage: int, batch: slice = slice(None), text_fn=local_text_features, class_idx=None):
    learner, classes, features, labels, pos_text, logit_scale = _setup(stage)
    config = TrainConfig(stage=stage, amp="none")
    losses = train_step(
        learner,
        classes,
        features[batch],
        labels[batch],
        config,
        logit_scale,
        class_idx=class_idx,
        pos_text=pos_text,
        text_fn=text_fn,
    )
    param = learner.pos_ctx if stage == 1 else learner.neg_ctx
    return losses, param.grad.clone()


def _train_worker(rank: int, tmp_path: Path) -> None:
    fn = ShardedTextFeatures()
    out = {}
    for stage in (1, 2):
        out[f"replicated{stage}"] = _step(stage, text_fn=fn)  # every rank: the whole batch
        out[f"split{stage}"] = _step(stage, slice(rank * 4, rank * 4 + 4), text_fn=fn)  # half the batch each
    # a class subset: three classes split 2 + 1, and a single class (one rank encodes nothing)
    out["subset"] = _step(2, slice(0, 3), text_fn=fn, class_idx=torch.tensor([0, 1, 2]))
    for stage in (1, 2):
        out[f"one-class{stage}"] = _step(stage, slice(2, 3), text_fn=fn, class_idx=torch.tensor([2]))
    torch.save(out, tmp_path / f"rank{rank}.pt")


def test_sharded_training_step_matches_the_single_process_step(tmp_path):
    _run(_train_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    expected = {}
    for stage in (1, 2):
        expected[f"replicated{stage}"] = expected[f"split{stage}"] = _step(stage)
    expected["subset"] = _step(2, slice(0, 3), class_idx=torch.tensor([0, 1, 2]))
    for stage in (1, 2):
        expected[f"one-class{stage}"] = _step(stage, slice(2, 3), class_idx=torch.tensor([2]))
    for name, (losses, grad) in expected.items():
        assert (grad.abs().sum() > 0) == (name != "one-class1"), name  # CE over one class is constant
        for r, out in enumerate(ranks):
            # the context gradient is the single-process one on every rank (replicas stay equal)
            torch.testing.assert_close(out[name][1], grad, atol=1e-6, rtol=1e-4, msg=f"{name} rank {r}")
        if name.startswith("split"):  # each rank's loss is its slice's; their mean is the global loss
            mean = {k: sum(out[name][0][k] for out in ranks) / WORLD for k in losses}
            assert mean == pytest.approx(losses, rel=1e-5, abs=1e-6), name
            assert ranks[0][name][0]["total"] != pytest.approx(losses["total"], rel=1e-6)
        else:
            for out in ranks:
                assert out[name][0] == pytest.approx(losses, rel=1e-5, abs=1e-6), name


ONLINE_BATCHES = ([4, 0, 7, 2, 9], [3])  # 3 + 2 samples per rank, and one sample (rank 1 has none)


def _online_batches() -> tuple[list[np.ndarray], int]:
    """Augmented features of `ONLINE_BATCHES` from one training generator, in this process, and
    the number of images this process augmented."""
    from negprompt.train.sources import OnlineSource

    backbone = _tiny()
    transform, calls = backbone.train_transform, []
    backbone.train_transform = lambda im: calls.append(1) or transform(im)
    source = OnlineSource(image_folder(Path(os.environ["NP_ONLINE_IMAGES"])), backbone, n_classes=2)
    generator = torch.Generator().manual_seed(5)
    return [source.batch(torch.tensor(idx), generator).numpy() for idx in ONLINE_BATCHES], len(calls)


def _online_worker(rank: int, tmp_path: Path) -> None:
    batches, augmented = _online_batches()
    np.savez(tmp_path / f"online{rank}.npz", *batches, augmented=augmented)


def test_online_augmented_batches_are_split_and_gathered(tmp_path, monkeypatch):
    write_images(tmp_path / "images" / "a", 5, seed=4, size=40)
    write_images(tmp_path / "images" / "b", 5, seed=5, size=40)
    monkeypatch.setenv("NP_ONLINE_IMAGES", str(tmp_path / "images"))  # inherited by the spawned ranks
    single, augmented = _online_batches()
    assert [len(b) for b in single] == [len(idx) for idx in ONLINE_BATCHES] and augmented == 6
    _run(_online_worker, tmp_path)
    for r in range(WORLD):
        got = np.load(tmp_path / f"online{r}.npz")
        assert int(got["augmented"]) == [3 + 1, 2 + 0][r]  # each rank did only its slice
        for k, expected in enumerate(single):
            # same crops and flips per sample whichever rank encodes it; every rank holds the batch
            np.testing.assert_allclose(got[f"arr_{k}"], expected, atol=1e-5, err_msg=f"rank {r} batch {k}")


def test_classes_are_split_evenly_by_length():
    lengths = torch.tensor([3, 1, 1, 2, 5, 2, 1, 3, 3, 1, 2])
    for world in (1, 2, 3, 4):
        parts = shard_classes(lengths, world)
        assert sorted(torch.cat(parts).tolist()) == list(range(len(lengths)))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        for n in lengths.unique():  # prompts of each length spread evenly
            per_rank = [int((lengths[p] == n).sum()) for p in parts]
            assert max(per_rank) - min(per_rank) <= 1
        assert all(bool((p[1:] > p[:-1]).all()) for p in parts)


def test_single_process_is_a_no_op(tiny_backbone, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed()
    assert (info.rank, info.world, info.is_main) == (0, 1, True) and get_info() == info
    learner = PromptLearner(TextEncoder(tiny_backbone))
    classes = learner.class_names(NAMES)
    idx = torch.tensor([1, 4, 6])
    torch.testing.assert_close(
        ShardedTextFeatures()(learner, classes, idx, "neg"),
        learner.negative_features(classes, idx),
        atol=0,
        rtol=0,
    )
    cleanup()
    assert get_info() == DistInfo()


def test_negprompt_train_under_torchrun_matches_one_process(tmp_path):
    """`torchrun --nproc_per_node=2 … negprompt train` (gloo, CPU) learns the same prompts as one process."""
    import socket
    import subprocess
    import sys

    from safetensors.numpy import load_file

    from tests.conftest import write_images

    for k, name in enumerate(["cat", "dog", "bird", "fish"]):
        write_images(tmp_path / "train" / name, 8, seed=k, color=(60 * k, 90, 200 - 40 * k))

    def train(out, nproc):
        common = [
            "-m", "negprompt.cli", "train", "--train-dir", str(tmp_path / "train"), "--out", str(out),
            "--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu", "--stage", "both",
            "--epochs", "2", "--shots", "4", "--val-per-class", "2", "--train-batch-size", "8",
            "--batch-size", "4", "--cache-dir", str(tmp_path / f"cache{nproc}"), "--no-progress",
            "--no-neglabel",
        ]  # fmt: skip
        if nproc == 1:
            cmd = [sys.executable, *common]
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [
                sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                "--master_addr=127.0.0.1", f"--master_port={port}", *common,
            ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return load_file(str(out / "prompts" / "negprompt.safetensors"))

    one, two = train(tmp_path / "one", 1), train(tmp_path / "two", 2)
    from negprompt.rundir import load_run

    # rank 0 evaluated and wrote one ordinary run directory; no rank left a work folder behind
    runs = [load_run(tmp_path / name) for name in ("one", "two")]
    assert [r.config["kind"] for r in runs] == ["folders", "folders"]
    assert not (tmp_path / "two.partial").exists() and sorted(
        p.name for p in tmp_path.iterdir() if "two" in p.name
    ) == ["two"]
    np.testing.assert_allclose(runs[1].metrics["id_acc"], runs[0].metrics["id_acc"])
    assert set(one) == set(two)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-4)
    assert not np.allclose(one["neg_ctx"], one["pos_ctx"][None], atol=1e-3)  # training moved them
