"""Whole datasets as float tensors, read from torchvision's on-disk layout.

Pixels are standardized per channel (`data.standardize`, the default, as torchvision's and
Avalanche's MNIST and CIFAR transforms do), or left in [0, 1], as published code that passes no
normalisation transform feeds them. Each loader returns [0, 1] pixels and the statistics to
standardize with; `load_dataset` applies them, in one place.

We parse torchvision's files ourselves (idx for MNIST-likes, pickled batches for CIFAR) instead of
going through the torchvision dataset classes: those decode one PIL image per sample and extract
archives next to read-only sources. Files are checked against the md5 sums torchvision publishes
(its own tables) before they are read. torchvision is still what downloads a missing dataset on a
connected machine. Tiny ImageNet, which torchvision does not have, is read from the folders of its
official zip, extracted by the user; it has no per-file sums, so its checks are structural.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cl_bench.errors import DataUnavailableError


@dataclass
class TensorData:
    name: str
    x_train: torch.Tensor  # float32, (N, C, H, W): [0, 1] as loaded, standardized unless data.standardize=false
    y_train: torch.Tensor  # int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    mean: tuple[float, ...] = (0.0,)  # per channel, what standardizing subtracts
    std: tuple[float, ...] = (1.0,)

    def standardize_(self) -> "TensorData":
        # In place: Tiny ImageNet is 5.4 GB as float32, and `(x - mean) / std` would hold two more
        # such tensors at its peak.
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        for x in (self.x_train, self.x_test):
            x.sub_(mean).div_(std)
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def resolve_data_root(root: str | None) -> Path:
    """`data.root` from the config, else $CL_BENCH_DATA, else the user cache directory."""
    if root:
        return Path(root).expanduser()
    if os.environ.get("CL_BENCH_DATA"):
        return Path(os.environ["CL_BENCH_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cl-bench"


def _unit(images_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_uint8).float().div_(255.0)


# --- MNIST-like (idx files) ---------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = bytearray(f.read())  # writable, so torch can wrap it without a copy warning
    except (EOFError, OSError) as exc:  # truncated or damaged archive: never train on part of it
        raise DataUnavailableError(f"{path}: corrupt or truncated file ({exc}); replace it with a fresh copy") from None
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte data, the only type MNIST-likes use
        raise DataUnavailableError(f"{path}: not an idx file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataUnavailableError(f"{path}: truncated idx file ({data.size} of {np.prod(shape)} values)")
    return data.reshape(shape)


@functools.cache
def _published_md5(tv_class: str) -> dict[str, str]:
    """File name -> md5 as torchvision publishes them: the MNIST-likes' .gz archives and the
    CIFAR batches (extracted idx files and Omniglot's PNGs have none)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, tv_class)
    pairs = getattr(cls, "resources", None) or [*getattr(cls, "train_list", []), *getattr(cls, "test_list", [])]
    return {Path(name).name: md5 for name, md5 in pairs}


def _verify_md5(path: Path, tv_class: str) -> None:
    want = _published_md5(tv_class).get(path.name)
    if want is None:
        return
    with open(path, "rb") as f:
        got = hashlib.file_digest(f, "md5").hexdigest()
    if got != want:
        raise DataUnavailableError(
            f"{path}: md5 {got} is not torchvision's published {want} for {tv_class}: the file is damaged or not "
            f"the original; replace it (or set data.verify_checksums=false for files of your own)")


def _find_idx(raw_dir: Path, stem: str) -> Path | None:
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _load_mnist_like(name: str, folder: str, tv_class: str, mean, std, root: Path, download: bool,
                     verify: bool) -> TensorData:
    raw_dir = root / folder / "raw"
    paths = {f: _find_idx(raw_dir, f) for pair in _IDX_FILES.values() for f in pair}
    if any(p is None for p in paths.values()):
        _download(name, tv_class, root, download, searched=raw_dir)
        paths = {f: _find_idx(raw_dir, f) for f in paths}
    if verify:
        for path in paths.values():
            _verify_md5(path, tv_class)
    arrays = {}
    for split, (images, labels) in _IDX_FILES.items():
        arrays[split] = (_read_idx(paths[images])[:, None], _read_idx(paths[labels]).astype(np.int64))
    return TensorData(
        name=name,
        x_train=_unit(arrays["train"][0]),
        y_train=torch.from_numpy(arrays["train"][1]),
        x_test=_unit(arrays["test"][0]),
        y_test=torch.from_numpy(arrays["test"][1]),
        n_classes=10, mean=tuple(mean), std=tuple(std),
    )


# --- CIFAR (pickled python batches) -------------------------------------------------------------

_CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10, "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100, "CIFAR100"),
}
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _load_cifar(name: str, root: Path, download: bool, verify: bool) -> TensorData:
    folder, train_files, test_files, label_key, n_classes, tv_class = _CIFAR[name]
    base = root / folder
    if not all((base / f).is_file() for f in train_files + test_files):
        _download(name, tv_class, root, download, searched=base)
    if verify:
        for f in train_files + test_files:
            _verify_md5(base / f, tv_class)

    def read(files):
        xs, ys = [], []
        for f in files:
            try:
                with open(base / f, "rb") as fh:
                    entry = pickle.load(fh, encoding="latin1")
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                raise DataUnavailableError(f"{base / f}: corrupt or truncated file ({exc}); replace it with a fresh copy") from None
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[label_key], dtype=np.int64))
        return _unit(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_train, y_train = read(train_files)
    x_test, y_test = read(test_files)
    return TensorData(name, x_train, y_train, x_test, y_test, n_classes, _CIFAR_MEAN, _CIFAR_STD)


# --- Omniglot (one PNG per drawing) ---------------------------------------------------------------

OMNIGLOT_TRAIN_PER_CLASS = 15  # of each character's 20 drawings; the other 5 are its test set
OMNIGLOT_SIZE = 28  # drawings are 105x105; 28x28 is the usual few-shot resolution


def _load_omniglot(root: Path, download: bool, verify: bool) -> TensorData:
    from PIL import Image

    base = root / "omniglot-py"
    folders = [base / "images_background", base / "images_evaluation"]
    if not all(f.is_dir() for f in folders):
        _download("omniglot", "Omniglot", root, download, searched=base,
                  fetch=lambda tvd: [tvd.Omniglot(str(root), background=b, download=True) for b in (True, False)])
    # Every character of both halves is a class: few-shot scenarios draw from all 1623.
    characters = sorted(c for f in folders for alphabet in sorted(f.iterdir()) if alphabet.is_dir()
                        for c in alphabet.iterdir() if c.is_dir())
    if not characters:
        raise DataUnavailableError(f"dataset 'omniglot': no character folders under {base}")
    xs, ys, is_train = [], [], []
    for label, character in enumerate(characters):
        drawings = sorted(character.glob("*.png"))
        if len(drawings) <= OMNIGLOT_TRAIN_PER_CLASS:
            raise DataUnavailableError(
                f"{character}: {len(drawings)} drawings, need more than {OMNIGLOT_TRAIN_PER_CLASS} (train + test)")
        for i, png in enumerate(drawings):
            with Image.open(png) as img:
                small = img.convert("L").resize((OMNIGLOT_SIZE, OMNIGLOT_SIZE), Image.BILINEAR)
            xs.append(255 - np.asarray(small, dtype=np.uint8))  # strokes bright on dark, like MNIST
            ys.append(label)
            is_train.append(i < OMNIGLOT_TRAIN_PER_CLASS)
    x = torch.from_numpy(np.stack(xs)[:, None]).float().div_(255.0)
    y = torch.tensor(ys, dtype=torch.long)
    train = torch.tensor(is_train)
    mean, std = float(x[train].mean()), float(x[train].std())
    return TensorData("omniglot", x[train], y[train], x[~train], y[~train], len(characters), (mean,), (std,))


# --- Tiny ImageNet (the official zip's JPEG folders) --------------------------------------------

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_SIZE = 64
# The per-channel statistics commonly used for Tiny ImageNet's training set (Avalanche's
# SplitTinyImageNet normalises with CIFAR-10's instead).
_TINY_MEAN, _TINY_STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)


def _tiny_wnids(path: Path) -> list[str]:
    """The class ids, one per line; a class's index is its line (as in Avalanche's TinyImagenet)."""
    if not path.is_file():
        raise DataUnavailableError(f"{path}: missing; it lists the 200 class ids (wnids) of {TINY_IMAGENET_URL}, "
                                   f"one per line; re-extract the zip")
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    repeated = sorted({w for w in wnids if wnids.count(w) > 1})
    if not wnids or repeated:
        what = f"repeats {', '.join(repeated)}" if repeated else "is empty"
        raise DataUnavailableError(f"{path}: {what}; it must list each class id (wnid) once, one per line")
    return wnids


def _tiny_val_split(val_dir: Path, label_of: dict[str, int]) -> tuple[list[Path], list[int]]:
    """The labelled val split (the zip's test split has no labels): val_annotations.txt names each
    image's wnid, tab-separated with its bounding box."""
    annotations = val_dir / "val_annotations.txt"
    if not annotations.is_file():
        raise DataUnavailableError(f"{annotations}: missing; it gives the class of every image in {val_dir / 'images'}; "
                                   f"re-extract the zip")
    paths, labels = [], []
    for n, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DataUnavailableError(f"{annotations} line {n}: expected tab-separated file name, wnid (one "
                                       f"of wnids.txt) and bounding box, got {line.strip()!r}")
        paths.append(val_dir / "images" / fields[0])
        labels.append(label_of[fields[1]])
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        what = f"{len(missing)} of its {len(paths)} images are missing, e.g. {missing[0]}" if missing else "lists no images"
        raise DataUnavailableError(f"{annotations}: {what}; re-extract the zip")
    return paths, labels


def _read_rgb_images(paths: list[Path]) -> np.ndarray:
    """(N, 3, 64, 64) uint8. Some Tiny ImageNet JPEGs are grayscale: converted to RGB, as the PIL
    loader of torchvision and Avalanche does."""
    from PIL import Image

    size = TINY_IMAGENET_SIZE
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except OSError as exc:  # PIL's UnidentifiedImageError too: a truncated or foreign file
            raise DataUnavailableError(f"{path}: unreadable image ({exc}); replace it with a fresh copy") from None
        if rgb.size != (size, size):
            raise DataUnavailableError(f"{path}: {rgb.size[0]}x{rgb.size[1]} image, Tiny ImageNet's are {size}x{size}")
        out[i] = np.asarray(rgb).transpose(2, 0, 1)
    return out


def _load_tiny_imagenet(root: Path, download: bool, verify: bool) -> TensorData:
    # `download` and `verify` do not apply: torchvision has no Tiny ImageNet to fetch, and only
    # the zip has a published checksum, not the extracted files read here.
    base = root / "tiny-imagenet-200"
    if not base.is_dir():
        raise DataUnavailableError(
            f"dataset 'tiny_imagenet' not found in {base}; download {TINY_IMAGENET_URL} and extract it under "
            f"data.root ({root}), or point data.root (or $CL_BENCH_DATA) at a folder that has tiny-imagenet-200/ "
            f"(it is never downloaded automatically)")
    wnids = _tiny_wnids(base / "wnids.txt")
    train_paths, train_labels = [], []
    for label, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        images = sorted(folder.glob("*.JPEG"))
        if not images:
            raise DataUnavailableError(f"{folder}: no .JPEG images for class {wnid} of wnids.txt; re-extract the zip")
        train_paths += images
        train_labels += [label] * len(images)
    test_paths, test_labels = _tiny_val_split(base / "val", {w: i for i, w in enumerate(wnids)})
    return TensorData(
        name="tiny_imagenet",
        x_train=_unit(_read_rgb_images(train_paths)),
        y_train=torch.tensor(train_labels, dtype=torch.long),
        x_test=_unit(_read_rgb_images(test_paths)),
        y_test=torch.tensor(test_labels, dtype=torch.long),
        n_classes=len(wnids), mean=_TINY_MEAN, std=_TINY_STD,
    )


# --- scikit-learn digits (embedded, no download) ------------------------------------------------

def _load_digits(root: Path, download: bool, verify: bool) -> TensorData:
    # The first import of scikit-learn draws from Python's global RNG (rich, imported through
    # sklearn.callback, seeds an id counter), after the run has seeded it: the first digits run in
    # a process would differ from every later one (a sweep's job 0 from its job 1).
    state = random.getstate()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    random.setstate(state)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # 8x8, values 0..16
    # A fixed split, independent of the run seed, so every run is scored on the same test set.
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=0.3, stratify=digits.target, random_state=0
    )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return TensorData("digits", torch.from_numpy(x_tr), to_y(y_tr), torch.from_numpy(x_te), to_y(y_te), 10, (mean,), (std,))


def _download(name: str, tv_class: str, root: Path, download: bool, searched: Path, fetch=None) -> None:
    how = (
        f"place torchvision's {tv_class} files there, point data.root (or $CL_BENCH_DATA) at a folder "
        f"that has them, or run with data.download=true on a connected machine"
    )
    if not download:
        raise DataUnavailableError(f"dataset '{name}' not found in {searched}; {how}")
    import torchvision.datasets as tvd

    try:
        if fetch is not None:
            fetch(tvd)
        else:
            for train in (True, False):
                getattr(tvd, tv_class)(root=str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataUnavailableError(
            f"dataset '{name}' not found in {searched} and download failed ({first_line}); {how}"
        ) from None


# (root, download, verify checksums) -> data
_LOADERS: dict[str, Callable[[Path, bool, bool], TensorData]] = {
    "digits": _load_digits,
    "mnist": lambda root, dl, v: _load_mnist_like("mnist", "MNIST", "MNIST", (0.1307,), (0.3081,), root, dl, v),
    "fmnist": lambda root, dl, v: _load_mnist_like("fmnist", "FashionMNIST", "FashionMNIST", (0.2860,), (0.3530,), root, dl, v),
    "cifar10": lambda root, dl, v: _load_cifar("cifar10", root, dl, v),
    "cifar100": lambda root, dl, v: _load_cifar("cifar100", root, dl, v),
    "omniglot": _load_omniglot,
    "tiny_imagenet": _load_tiny_imagenet,
}


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


@dataclass(frozen=True)
class DataSource:
    """Where datasets live, how they are fetched and scaled: the run's `data` config (`data.root`,
    `data.download`, `data.verify_checksums`, `data.standardize`), handed to every scenario builder."""
    root: str | None = None
    download: bool = True
    verify_checksums: bool = True  # off only for files of one's own under the standard names
    standardize: bool = True

    def load(self, name: str) -> TensorData:
        return load_dataset(name, self.root, self.download, self.verify_checksums, self.standardize)


def load_dataset(name: str, root: str | Path | None = None, download: bool = True,
                 verify_checksums: bool = True, standardize: bool = True) -> TensorData:
    """`verify_checksums`: compare files with the md5 sums torchvision publishes for them (off
    only for files of your own that use the standard names, like the tests' fake data).
    `standardize`: per-channel (x - mean) / std with the dataset's statistics; else [0, 1]."""
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset '{name}'; available: {', '.join(list_datasets())}")
    data = _LOADERS[name](resolve_data_root(str(root) if root else None), download, verify_checksums)
    return data.standardize_() if standardize else data
