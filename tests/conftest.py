from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cl_bench.cli import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]
# Real MNIST lives in ../shared/data beside the repository (CI has it); CL_BENCH_TEST_DATA overrides.
SHARED_DATA = Path(os.environ.get("CL_BENCH_TEST_DATA", REPO.parent / "shared" / "data"))


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["device=cpu", *overrides])


@pytest.fixture
def run_job(tmp_path):
    """Compose a config the way the CLI does and run it in-process; returns results.json's dict."""
    from cl_bench.run import run

    def _run(overrides: list[str], name: str = "run") -> dict:
        return run(compose_config(overrides), tmp_path / name)

    return _run


@pytest.fixture(scope="session")
def shared_mnist_root() -> Path:
    root = SHARED_DATA
    assert (root / "MNIST" / "raw").is_dir(), f"real MNIST expected in {root}/MNIST/raw (see ../shared/data/README.md)"
    return root


# --- fake datasets in torchvision's on-disk formats ---------------------------------------------

def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fake_mnist_like(root: Path, folder: str, n_train=200, n_test=100, compress=True, seed=0) -> None:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)


def write_fake_cifar(root: Path, n_classes: int, per_file=100, seed=0) -> None:
    rng = np.random.default_rng(seed)
    if n_classes == 10:
        folder, train_files, test_files, key = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"
    else:
        folder, train_files, test_files, key = "cifar-100-python", ["train"], ["test"], "fine_labels"
    base = root / folder
    base.mkdir(parents=True, exist_ok=True)
    for name in train_files + test_files:
        entry = {"data": rng.integers(0, 256, (per_file, 3 * 32 * 32), dtype=np.uint8),
                 key: [int(i % n_classes) for i in range(per_file)]}
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)


def write_fake_omniglot(root: Path, characters=((("background", "Alpha", 3)), ("background", "Beta", 3), ("evaluation", "Gamma", 2)),
                        drawings=20, seed=0) -> None:
    """105x105 PNGs in torchvision's Omniglot layout: omniglot-py/images_<half>/<alphabet>/<characterNN>/<id>_<drawer>.png"""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for half, alphabet, n in characters:
        for c in range(1, n + 1):
            folder = root / "omniglot-py" / f"images_{half}" / alphabet / f"character{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for d in range(1, drawings + 1):
                pixels = np.where(rng.random((105, 105)) < 0.9, 255, 0).astype(np.uint8)  # white page, dark strokes
                Image.fromarray(pixels).convert("1").save(folder / f"{c:04d}_{d:02d}.png")


def tiny_imagenet_colour(label: int) -> tuple[int, int, int]:
    """The flat colour of every fake Tiny ImageNet image of class `label`: 16 levels apart in red
    and green, so the class survives JPEG (tests decode it back with `tiny_imagenet_label`)."""
    return 8 + 16 * (label % 16), 8 + 16 * (label // 16), 128


def tiny_imagenet_label(rgb) -> int:
    red, green = (int(v) // 16 for v in rgb[:2])
    return red + 16 * green


def write_fake_tiny_imagenet(root: Path, n_classes=200, per_class=3, n_val=400, seed=0) -> list[str]:
    """64x64 JPEGs in the official zip's layout, under root/tiny-imagenet-200/: wnids.txt (not in
    sorted order, as the real one), train/<wnid>/images/<wnid>_<i>.JPEG (+ <wnid>_boxes.txt),
    val/images/val_<i>.JPEG with val/val_annotations.txt (file, wnid, box; classes interleaved),
    and an unlabelled test/ folder. Each class has its own flat colour (`tiny_imagenet_colour`).
    Returns the wnids in file order."""
    from PIL import Image

    assert n_classes <= 208, "tiny_imagenet_colour encodes at most 13 x 16 classes"
    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    wnids = [f"n{2000000 + 1000 * int(k) + 7:08d}" for k in rng.permutation(n_classes)]
    (base / "val" / "images").mkdir(parents=True, exist_ok=True)
    (base / "test" / "images").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tclass {w}\n" for w in wnids))

    def save(label: int, path: Path) -> None:
        Image.new("RGB", (64, 64), tiny_imagenet_colour(label)).save(path, "JPEG")

    for label, wnid in enumerate(wnids):
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save(label, images / f"{wnid}_{i}.JPEG")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(
            "".join(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(per_class)))
    val_labels = rng.permutation(np.arange(n_val) % n_classes)
    lines = []
    for i, label in enumerate(val_labels.tolist()):
        save(label, base / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[label]}\t{i % 10}\t{i % 7}\t60\t62\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    save(0, base / "test" / "images" / "test_0.JPEG")
    return wnids


@pytest.fixture(scope="session")
def fake_data_root(tmp_path_factory, shared_mnist_root) -> Path:
    """A data root holding fake Fashion-MNIST, CIFAR, Omniglot and Tiny ImageNet files plus a link
    to the real MNIST."""
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist_like(root, "FashionMNIST")
    write_fake_cifar(root, 10)
    write_fake_cifar(root, 100, per_file=500)
    write_fake_omniglot(root)
    write_fake_tiny_imagenet(root)
    (root / "MNIST").symlink_to(shared_mnist_root / "MNIST")
    return root


def build_scenario(name: str, cfg, root=None, seed: int = 0, verify_checksums: bool = True):
    """A scenario as a run builds it: its declared rules checked, then the builder with the data source."""
    from cl_bench.data import DataSource
    from cl_bench.registry import SCENARIOS

    SCENARIOS.check(name, cfg, "scenario")
    source = DataSource(str(root) if root else None, download=False, verify_checksums=verify_checksums)
    return SCENARIOS.build(name, cfg, source, seed)


def on_default_stream(strategy: str) -> list[str]:
    """Overrides that put a strategy on the default stream (split_digits) in a setting it declares
    it supports: task labels for a method that runs task-incremental only."""
    from cl_bench.registry import STRATEGIES

    settings = STRATEGIES.entry(strategy).settings
    return [f"strategy={strategy}", *([] if "class_incremental" in settings else ["scenario.task_labels=true"])]


def supports(strategy: str, setting: str) -> bool:
    from cl_bench.registry import STRATEGIES

    return setting in STRATEGIES.entry(strategy).settings


def tiny(overrides: list[str]) -> list[str]:
    """Overrides that make any job small enough for a smoke test."""
    return ["train.epochs=1", "train.batch_size=64", *overrides]


__all__ = ["build_scenario", "compose_config", "on_default_stream", "supports", "write_fake_mnist_like", "write_fake_cifar", "write_fake_omniglot", "write_fake_tiny_imagenet",
           "tiny_imagenet_colour", "tiny_imagenet_label", "tiny", "OmegaConf"]


def load_leaderboard_script(name: str):
    """A script of leaderboards/ (not a package) as a module, for its functions."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "leaderboards" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
