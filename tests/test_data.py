import numpy as np
import pytest
import torch

from cl_bench.data import DataUnavailableError, load_dataset, resolve_data_root
from tests.conftest import write_fake_cifar, write_fake_mnist_like


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
