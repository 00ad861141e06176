"""Tests for var_tutorial.data: small fake archives in the real layout, the toy set, loaders.

The real archives are only found and checksummed here, never unpacked (too slow for CI).
"""
import hashlib
import io
import json
import re
import shutil
import tarfile

import pytest
import torch
from PIL import Image

from var_tutorial import data
from var_tutorial.data import DatasetInfo

SIZE = 8   # fake images are 8x8


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """Every test gets its own data folder and no archive folder from the environment."""
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VAR_TUTORIAL_ARCHIVES", raising=False)


def jpeg(colour, size=SIZE, mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# Default fake layout: classes a (red) and b (blue); "test" lives in a "val" folder like
# Imagenette, so the split-name mapping is exercised too.
COLOURS = {"a": (200, 30, 30), "b": (30, 30, 200)}
GOOD = {f"fake/{sub}/{cls}/{i:04d}.jpg": jpeg(COLOURS[cls])
        for sub, n in (("train", 3), ("val", 2)) for cls in "ab" for i in range(n)}


def make_fake(tmp_path, monkeypatch, files=None, counts=None, sha256=None):
    """Write fake.tar.xz from {path in archive: bytes} and register it as data set "fake"."""
    files = GOOD if files is None else files
    archive_dir = tmp_path / "archives"
    archive_dir.mkdir(exist_ok=True)
    archive = archive_dir / "fake.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for name, payload in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(payload)
            tar.addfile(entry, io.BytesIO(payload))
    info = DatasetInfo(
        name="fake", archive="fake.tar.xz",
        sha256=sha256 or hashlib.sha256(archive.read_bytes()).hexdigest(),
        folder="fake", split_folders={"train": "train", "test": "val"}, image_size=SIZE,
        class_folders=("a", "b"), class_names=("red", "blue"),
        counts=counts or {"train": 6, "test": 4})
    monkeypatch.setitem(data.DATASETS, "fake", info)
    monkeypatch.setenv("VAR_TUTORIAL_ARCHIVES", str(archive_dir))
    return archive


def test_prepare_unpacks_verifies_and_marks_complete(tmp_path, monkeypatch):
    archive = make_fake(tmp_path, monkeypatch)
    folder = data.prepare("fake")
    assert folder == tmp_path / "data" / "fake"
    assert sorted(p.name for p in (folder / "val").iterdir()) == ["a", "b"]
    marker = json.loads((folder / data.MARKER).read_text())
    assert marker == {"sha256": data.DATASETS["fake"].sha256, "counts": {"train": 6, "test": 4}}
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["fake"]   # no partial folders
    archive.unlink()                       # complete now: the archive is no longer needed
    assert data.prepare("fake") == folder


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path, monkeypatch):
    archive = make_fake(tmp_path, monkeypatch, sha256="0" * 64)
    received = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"checksum mismatch for '{re.escape(str(archive))}'"
                                         f".*expected sha256 {'0' * 64}, received {received}"):
        data.prepare("fake")
    assert list((tmp_path / "data").iterdir()) == []   # nothing half-unpacked left behind


def test_missing_archive_lists_every_place_looked(tmp_path, monkeypatch):
    make_fake(tmp_path, monkeypatch)
    (tmp_path / "archives" / "fake.tar.xz").unlink()
    with pytest.raises(FileNotFoundError, match="VAR_TUTORIAL_ARCHIVES") as err:
        data.prepare("fake", archive_dir=tmp_path / "elsewhere")
    for folder in (tmp_path / "elsewhere", tmp_path / "archives",
                   data.REPO_ROOT.parent / "shared" / "data", tmp_path / "data" / "archives"):
        assert str(folder / "fake.tar.xz") in str(err.value)


def test_explicit_archive_dir_comes_first(tmp_path, monkeypatch):
    archive = make_fake(tmp_path, monkeypatch)
    other = tmp_path / "other"
    other.mkdir()
    (other / "fake.tar.xz").write_bytes(archive.read_bytes())
    assert data.find_archive("fake", archive_dir=other) == other / "fake.tar.xz"
    assert data.find_archive("fake") == archive
    assert data.find_archive("fake", archive_dir=archive) == archive   # the file itself


def test_folder_without_marker_is_redone(tmp_path, monkeypatch):
    make_fake(tmp_path, monkeypatch)
    partial = tmp_path / "data" / "fake" / "train"
    partial.mkdir(parents=True)
    (partial / "leftover.txt").write_text("from an interrupted unpack")
    folder = data.prepare("fake")
    assert not (folder / "train" / "leftover.txt").exists()
    assert (folder / data.MARKER).is_file()


def test_load_split_decodes_in_order_and_caches(tmp_path, monkeypatch):
    archive = make_fake(tmp_path, monkeypatch)
    images, labels = data.load_split("fake", "test")
    assert images.shape == (4, 3, SIZE, SIZE) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1] and labels.dtype == torch.int64
    red = torch.tensor(COLOURS["a"]).view(1, 3, 1, 1)
    assert (images[:2].int() - red).abs().max() <= 8     # JPEG is lossy, but barely
    assert (tmp_path / "data" / "cache" / "fake_test.pt").is_file()

    # The second load comes from the cache alone: no archive, no unpacked folder needed.
    archive.unlink()
    shutil.rmtree(tmp_path / "data" / "fake")
    images2, labels2 = data.load_split("fake", "test")
    assert torch.equal(images, images2) and torch.equal(labels, labels2)


def test_non_image_file_is_named(tmp_path, monkeypatch):
    files = dict(GOOD, **{"fake/val/b/notes.jpg": b"this is not a picture"})
    make_fake(tmp_path, monkeypatch, files=files, counts={"train": 6, "test": 5})
    with pytest.raises(ValueError, match=r"notes\.jpg' is not a decodable image"):
        data.load_split("fake", "test")


def test_wrong_image_size_is_named(tmp_path, monkeypatch):
    big = jpeg((0, 0, 0), size=2 * SIZE)
    make_fake(tmp_path, monkeypatch, files=dict(GOOD, **{"fake/val/a/0000.jpg": big}))
    with pytest.raises(ValueError, match=r"0000\.jpg' is RGB with shape \(16, 16, 3\) \(H, W, C\); "
                                         r"expected RGB with shape \(8, 8, 3\)"):
        data.load_split("fake", "test")


def test_grey_image_is_named(tmp_path, monkeypatch):
    grey = jpeg(128, mode="L")
    make_fake(tmp_path, monkeypatch, files=dict(GOOD, **{"fake/val/b/0001.jpg": grey}))
    with pytest.raises(ValueError, match=r"0001\.jpg' is L with shape \(8, 8\) .*expected RGB"):
        data.load_split("fake", "test")


def test_images_without_class_folders_is_a_layout_error(tmp_path, monkeypatch):
    flat = {name.replace("/a/", "/a_").replace("/b/", "/b_"): b for name, b in GOOD.items()}
    make_fake(tmp_path, monkeypatch, files=flat)
    with pytest.raises(ValueError, match=r"0 images in train/, expected 6 .*<class>/<image>\.jpg"):
        data.prepare("fake")


def test_wrong_class_folders_is_a_layout_error(tmp_path, monkeypatch):
    renamed = {name.replace("/a/", "/c/"): b for name, b in GOOD.items()}
    make_fake(tmp_path, monkeypatch, files=renamed)
    with pytest.raises(ValueError, match=r"class folders in .*val' are \['b', 'c'\].*"
                                         r"<split>/<class>/<image>\.jpg"):
        data.load_split("fake", "test")


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match=r"name='mnist' is not a known data set; "
                                         r"expected one of \['cifar10', 'imagenette64'\]"):
        data.load_split("mnist", "train")
    with pytest.raises(ValueError, match=r"name='mnist'"):
        data.prepare("mnist")
    with pytest.raises(ValueError, match=r"split='val' is not a known split; "
                                         r"expected one of \['train', 'test'\]"):
        data.load_split("imagenette64", "val")


def test_unwritable_data_folder(tmp_path, monkeypatch):
    # We may run as root, where chmod restricts nothing: put the folder under a FILE.
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "a_file" / "data"))
    make_fake(tmp_path, monkeypatch)
    with pytest.raises(OSError, match=r"cannot write to the data folder .*a_file/data.*"
                                      r"set VAR_TUTORIAL_DATA"):
        data.prepare("fake")


def test_toy_dataset_is_deterministic_and_class_dependent():
    images, labels = data.toy_dataset(n=64, image_size=16, num_classes=4, seed=3)
    assert images.shape == (64, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.shape == (64,) and labels.dtype == torch.int64
    assert labels.bincount().tolist() == [16] * 4
    again = data.toy_dataset(n=64, image_size=16, num_classes=4, seed=3)
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    assert not torch.equal(images, data.toy_dataset(n=64, image_size=16, num_classes=4, seed=4)[0])
    # Brightest pixel colour per class differs: the classes are learnable.
    peak = torch.stack([images[labels == c].float().amax(dim=(2, 3)).mean(0) for c in range(4)])
    assert torch.cdist(peak, peak).add(torch.eye(4) * 1e3).min() > 50
    with pytest.raises(ValueError, match=r"image_size=4: expected an integer >= 8"):
        data.toy_dataset(image_size=4)


def test_float_uint8_round_trip():
    u8 = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = data.to_float(u8)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(data.to_uint8(x), u8)
    assert data.to_uint8(torch.tensor([-3.0, 0.0, 3.0])).tolist() == [0, 128, 255]
    with pytest.raises(TypeError, match=r"images_u8 has dtype torch.float32, expected torch.uint8"):
        data.to_float(x)


def test_make_loader_is_reproducible():
    images, labels = data.toy_dataset(n=40, image_size=8, seed=0)

    def order(seed):
        return torch.cat([y for _, y in data.make_loader(images, labels, 8, seed=seed)])

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    x, y = next(iter(data.make_loader(images, labels, 8, shuffle=False)))
    assert x.shape == (8, 3, 8, 8) and x.dtype == torch.uint8 and torch.equal(y, labels[:8])
    with pytest.raises(ValueError, match=r"batch_size=0: expected an integer >= 1"):
        data.make_loader(images, labels, batch_size=0)


def test_describe_and_class_names():
    assert data.class_names("imagenette64")[:2] == ["tench", "English springer"]
    assert data.class_names("cifar10")[-1] == "truck"
    text = data.describe("imagenette64")
    assert "train 9,469" in text and "test 3,925 (folder val/)" in text and "64x64" in text


@pytest.mark.parametrize("name", ["cifar10", "imagenette64"])
def test_real_archive_is_found_and_checksum_matches(name):
    expected = data.REPO_ROOT.parent / "shared" / "data" / data.DATASETS[name].archive
    if not expected.is_file():
        pytest.skip(f"{expected} not present")
    assert data.find_archive(name) == expected
    assert data.sha256_file(expected) == data.DATASETS[name].sha256
