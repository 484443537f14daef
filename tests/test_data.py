import numpy as np
import pytest
import torch

from cl_bench.data import DataUnavailableError, load_dataset, resolve_data_root
from tests.conftest import (
    tiny_imagenet_label,
    write_fake_cifar,
    write_fake_mnist_like,
    write_fake_tiny_imagenet,
)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_torchvision_idx_files(tmp_path, compress):
    write_fake_mnist_like(tmp_path, "FashionMNIST", n_train=50, n_test=20, compress=compress)
    data = load_dataset("fmnist", tmp_path, download=False, verify_checksums=False)
    assert data.x_train.shape == (50, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    assert data.x_train.dtype == torch.float32
    assert data.y_train.tolist() == [i % 10 for i in range(50)]
    assert data.n_classes == 10


@pytest.mark.parametrize("n_classes", [10, 100])
def test_cifar_reads_torchvision_pickled_batches(tmp_path, n_classes):
    write_fake_cifar(tmp_path, n_classes, per_file=n_classes * 2)
    data = load_dataset(f"cifar{n_classes}", tmp_path, download=False, verify_checksums=False)
    n_train_files = 5 if n_classes == 10 else 1
    assert data.x_train.shape == (n_train_files * n_classes * 2, 3, 32, 32)
    assert data.x_test.shape == (n_classes * 2, 3, 32, 32)
    assert set(data.y_train.tolist()) == set(range(n_classes))


def test_cifar_keeps_channel_layout(tmp_path):
    # torchvision stores each image as 1024 red, then 1024 green, then 1024 blue bytes.
    write_fake_cifar(tmp_path, 10, per_file=10)
    import pickle
    entry = pickle.load(open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb"), encoding="latin1")
    red_first = entry["data"][0, :1024].reshape(32, 32)
    data = load_dataset("cifar10", tmp_path, download=False, verify_checksums=False)
    mean, std = 0.4914, 0.2470
    np.testing.assert_allclose(data.x_test[0, 0].numpy(), (red_first / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_real_mnist_from_shared_data(shared_mnist_root):
    data = load_dataset("mnist", shared_mnist_root, download=False)
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.y_test).tolist()[:3] == [980, 1135, 1032]  # the known MNIST test counts
    assert abs(float(data.x_train.mean())) < 0.01 and abs(float(data.x_train.std()) - 1) < 0.01


@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_unstandardized_pixels_are_the_files_values_in_unit_range(name, tmp_path):
    if name == "cifar10":
        write_fake_cifar(tmp_path, 10, per_file=10)
    root = tmp_path if name == "cifar10" else None
    raw = load_dataset(name, root, download=False, verify_checksums=False, standardize=False)
    std = load_dataset(name, root, download=False, verify_checksums=False)
    assert 0 <= float(raw.x_train.min()) and float(raw.x_train.max()) <= 1 and float(raw.x_train.max()) > 0.5
    mean, sd = torch.tensor(std.mean).view(1, -1, 1, 1), torch.tensor(std.std).view(1, -1, 1, 1)
    assert torch.allclose((raw.x_test - mean) / sd, std.x_test, atol=1e-5)
    assert torch.equal(raw.y_train, std.y_train)


def test_digits_split_is_fixed_and_stratified():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(a.x_test, b.x_test)
    assert len(a.y_train) + len(a.y_test) == 1797
    counts = torch.bincount(a.y_test)
    assert counts.min() >= 50 and counts.max() <= 56


@pytest.mark.parametrize("name,folder", [("fmnist", "FashionMNIST"), ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_data_offline_is_one_clear_line(tmp_path, name, folder):
    with pytest.raises(DataUnavailableError) as err:
        load_dataset(name, tmp_path, download=False)
    message = str(err.value)
    assert "\n" not in message
    assert f"'{name}'" in message and str(tmp_path / folder) in message and "data.root" in message


def test_failed_download_is_one_clear_line(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("fmnist", tmp_path, download=True)
    assert "\n" not in str(err.value) and "download failed" in str(err.value)


def test_unknown_dataset_lists_available():
    with pytest.raises(ValueError, match="available: cifar10, cifar100, digits, fmnist, mnist"):
        load_dataset("imagenet")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("CL_BENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root("/explicit") == resolve_data_root("/explicit")
    assert str(resolve_data_root("/explicit")) == "/explicit"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("CL_BENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == tmp_path / "cache" / "cl-bench"


def test_truncated_archives_are_clear_errors_naming_the_file(tmp_path, shared_mnist_root):
    import shutil

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (shared_mnist_root / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    broken = raw / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(DataUnavailableError, match=f"{broken}: md5 [0-9a-f]{{32}} is not torchvision's published"):
        load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(DataUnavailableError, match=f"{broken}: corrupt or truncated file"):
        load_dataset("mnist", tmp_path, download=False, verify_checksums=False)  # the parser's own check


def test_a_changed_byte_fails_the_checksum(tmp_path, shared_mnist_root):
    import shutil

    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(shared_mnist_root / "MNIST" / "raw", raw)
    changed = raw / "train-labels-idx1-ubyte.gz"
    changed.chmod(0o644)
    payload = bytearray(changed.read_bytes())
    payload[-100] ^= 0xFF
    changed.write_bytes(bytes(payload))
    with pytest.raises(DataUnavailableError, match=f"{changed}: md5 .* published d53e105ee54ea40749a09fcbcd1e9432 for MNIST"):
        load_dataset("mnist", tmp_path, download=False)


def test_fake_cifar_with_real_names_fails_the_checksum(tmp_path):
    write_fake_cifar(tmp_path, 100)
    with pytest.raises(DataUnavailableError, match="cifar-100-python/train: md5 .* for CIFAR100"):
        load_dataset("cifar100", tmp_path, download=False)


def test_truncated_cifar_batch_is_a_clear_error(tmp_path):
    from tests.conftest import write_fake_cifar

    write_fake_cifar(tmp_path, 10)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(DataUnavailableError, match=f"{batch}: corrupt or truncated file"):
        load_dataset("cifar10", tmp_path, download=False, verify_checksums=False)


# --- Tiny ImageNet ------------------------------------------------------------------------------

TINY_MEAN, TINY_STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)


def _decoded_labels(x: torch.Tensor) -> list[int]:
    """The class each fake image's flat colour encodes, undoing the loader's normalisation."""
    pixels = x[:, :, 0, 0] * torch.tensor(TINY_STD) + torch.tensor(TINY_MEAN)
    return [tiny_imagenet_label(rgb) for rgb in (pixels * 255).round().tolist()]


def test_tiny_imagenet_reads_the_official_layout_with_wnids_line_order_as_labels(tmp_path):
    wnids = write_fake_tiny_imagenet(tmp_path, n_classes=12, per_class=4, n_val=36)
    assert wnids != sorted(wnids)  # so a loader that sorted the class ids would fail below
    data = load_dataset("tiny_imagenet", tmp_path, download=False)
    assert data.n_classes == 12 and data.input_shape == (3, 64, 64)
    assert data.x_train.shape == (48, 3, 64, 64) and data.x_test.shape == (36, 3, 64, 64)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert torch.bincount(data.y_train).tolist() == [4] * 12
    assert _decoded_labels(data.x_train) == data.y_train.tolist()  # class index = line of wnids.txt


def test_tiny_imagenet_val_annotations_give_the_test_labels(tmp_path):
    wnids = write_fake_tiny_imagenet(tmp_path, n_classes=12, per_class=1, n_val=36)
    data = load_dataset("tiny_imagenet", tmp_path, download=False)
    annotations = (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").read_text().splitlines()
    assert data.y_test.tolist() == [wnids.index(line.split("\t")[1]) for line in annotations]
    assert data.y_test.tolist() != sorted(data.y_test.tolist())  # interleaved classes, as in the real file
    assert _decoded_labels(data.x_test) == data.y_test.tolist()
    assert torch.bincount(data.y_test).tolist() == [3] * 12


def test_tiny_imagenet_grayscale_jpegs_become_rgb(tmp_path):
    from PIL import Image

    wnids = write_fake_tiny_imagenet(tmp_path, n_classes=2, per_class=2, n_val=2)
    gray = tmp_path / "tiny-imagenet-200" / "train" / wnids[0] / "images" / f"{wnids[0]}_0.JPEG"
    Image.new("L", (64, 64), 200).save(gray, "JPEG")  # the real set has some of these
    data = load_dataset("tiny_imagenet", tmp_path, download=False)
    first = data.x_train[0] * torch.tensor(TINY_STD).view(3, 1, 1) + torch.tensor(TINY_MEAN).view(3, 1, 1)
    assert data.x_train.shape[1:] == (3, 64, 64)
    assert torch.allclose(first * 255, torch.full_like(first, 200.0), atol=1.5)


@pytest.mark.parametrize("download", [False, True])
def test_missing_tiny_imagenet_is_one_line_naming_the_folder_and_the_zip(tmp_path, download):
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("tiny_imagenet", tmp_path, download=download)  # never downloaded: nothing to fetch it
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "tiny-imagenet-200") in message and "data.root" in message
    assert "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in message


def _remove_wnids(base):
    (base / "wnids.txt").unlink()
    return base / "wnids.txt", "missing"


def _remove_annotations(base):
    (base / "val" / "val_annotations.txt").unlink()
    return base / "val" / "val_annotations.txt", "missing"


def _empty_class_folder(base):
    wnid = (base / "wnids.txt").read_text().split()[1]
    for image in (base / "train" / wnid / "images").iterdir():
        image.unlink()
    return base / "train" / wnid / "images", "no .JPEG images"


def _unknown_wnid_in_annotations(base):
    path = base / "val" / "val_annotations.txt"
    path.write_text(path.read_text() + "val_99.JPEG\tn99999999\t0\t0\t63\t63\n")
    return path, "line 7: expected tab-separated file name, wnid"


def _missing_val_image(base):
    (base / "val" / "images" / "val_3.JPEG").unlink()
    return base / "val" / "val_annotations.txt", "1 of its 6 images are missing"


def _wrong_image_size(base):
    from PIL import Image

    path = base / "val" / "images" / "val_0.JPEG"
    Image.new("RGB", (32, 32)).save(path, "JPEG")
    return path, "32x32 image"


def _truncated_image(base):
    path = base / "val" / "images" / "val_1.JPEG"
    path.write_bytes(path.read_bytes()[:100])
    return path, "unreadable image"


@pytest.mark.parametrize("damage", [_remove_wnids, _remove_annotations, _empty_class_folder, _unknown_wnid_in_annotations,
                                    _missing_val_image, _wrong_image_size, _truncated_image])
def test_broken_tiny_imagenet_layout_is_one_line_naming_the_path(tmp_path, damage):
    write_fake_tiny_imagenet(tmp_path, n_classes=3, per_class=2, n_val=6)
    path, what = damage(tmp_path / "tiny-imagenet-200")
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("tiny_imagenet", tmp_path, download=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and what in message, message
