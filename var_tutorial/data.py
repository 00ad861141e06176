"""Data: CIFAR-10, Imagenette-64 and a generated toy set, as uint8 tensors.

One path for every image that enters the library:

    archive (.tar.xz) ─ prepare ─▶ data/<name>/<split>/<class>/<image>.jpg
                      ─ load_split ─▶ images (N, 3, H, W) uint8, labels (N,) int64
                      ─ cache ─▶ data/cache/<name>_<split>.pt   (decoded once)
                      ─ make_loader ─▶ batches; to_float ─▶ [-1, 1] for the models

Images stay uint8 until the last moment (4x smaller than float32, cheap to move to
the GPU); `to_float` / `to_uint8` are the only place the [-1, 1] convention lives.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm


class BadFileError(ValueError):
    """A file that is there but holds the wrong thing: undecodable, truncated, corrupted, or
    another kind of file than the one expected. It is a ValueError (code that catches those
    still does); the command line tells it from a bad argument by its exit status, 1 not 2."""

# ----------------------------------------------------------------------------------------
# 1. The registry: what we know about each real data set before touching any file.
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    name: str                  # the name users type: load_split("cifar10", "train")
    archive: str               # archive file name, e.g. "cifar10.tar.xz"
    sha256: str                # checksum of the archive, verified before unpacking
    folder: str                # top folder inside the archive (and under data_root())
    split_folders: dict        # our split name -> folder name, {"train": .., "test": ..}
    image_size: int            # every image is image_size x image_size RGB
    class_folders: tuple       # class folder names, sorted = label order (ImageFolder)
    class_names: tuple         # human-readable names, same order
    counts: dict               # expected number of images per split

    @property
    def num_classes(self) -> int:
        return len(self.class_folders)


_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10", archive="cifar10.tar.xz",
        sha256="b8e45c796a99b373ed0a963c4b1194037d26fc9037e1c7083347ec2c350a9f8f",
        folder="cifar10", split_folders={"train": "train", "test": "test"},
        image_size=32, class_folders=_CIFAR10_CLASSES, class_names=_CIFAR10_CLASSES,
        counts={"train": 50_000, "test": 10_000},
    ),
    "imagenette64": DatasetInfo(
        name="imagenette64", archive="imagenette64.tar.xz",
        sha256="ec1ce567bbbfb0a50cbdf95032be552a73cbfe1e2d342d2d3ae468e0c0a5d1d2",
        # Imagenette calls its held-out split "val"; we expose it as "test" like CIFAR-10.
        folder="imagenette64", split_folders={"train": "train", "test": "val"},
        image_size=64,
        class_folders=("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                       "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"),
        class_names=("tench", "English springer", "cassette player", "chain saw",
                     "church", "French horn", "garbage truck", "gas pump", "golf ball",
                     "parachute"),
        counts={"train": 9_469, "test": 3_925},
    ),
}
SPLITS = ("train", "test")


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"name={name!r} is not a known data set; expected one of "
                         f"{sorted(DATASETS)} (for a small generated set use toy_dataset())")
    return DATASETS[name]


def image_dataset_of(image_size: int, what: str) -> str:
    """The data set of image_size px images (cifar10 at 32, imagenette64 at 64), for a command
    whose --dataset defaults to the one its weights were made for; `what` names the weights."""
    names = [name for name, info in DATASETS.items() if info.image_size == image_size]
    if len(names) != 1:
        raise ValueError(f"{what} works on {image_size} px images, the size of no data set here "
                         f"({', '.join(f'{n}: {i.image_size} px' for n, i in DATASETS.items())}): pass --dataset")
    return names[0]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a known split; expected one of {list(SPLITS)}")


# ----------------------------------------------------------------------------------------
# 2. Paths: where unpacked data lives and where archives are looked for.
# ----------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = ".complete"          # written last, inside an unpacked folder: "this is whole"
DOWNLOADED = "torchvision-download"   # marker's "sha256" when the data came from torchvision


def data_root() -> Path:
    """Our own (git-ignored) data folder: $VAR_TUTORIAL_DATA or <repo>/data."""
    return Path(os.environ.get("VAR_TUTORIAL_DATA", REPO_ROOT / "data")).expanduser()


def archive_dirs(archive_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for archives, in order."""
    dirs = [Path(archive_dir)] if archive_dir is not None else []
    if os.environ.get("VAR_TUTORIAL_ARCHIVES"):
        dirs.append(Path(os.environ["VAR_TUTORIAL_ARCHIVES"]))
    dirs += [REPO_ROOT.parent / "shared" / "data", data_root() / "archives"]
    return [d.expanduser() for d in dirs]


def find_archive(name: str, archive_dir: str | os.PathLike | None = None) -> Path:
    info = get_info(name)
    if archive_dir is not None and Path(archive_dir).is_file():
        return Path(archive_dir)           # the archive file itself was given
    looked = [d / info.archive for d in archive_dirs(archive_dir)]
    for path in looked:
        if path.is_file():
            return path
    how = ("set VAR_TUTORIAL_ARCHIVES=/folder/with/archives or pass "
           "archive_dir=/folder/with/archives")
    if name == "cifar10":
        how += ", or, when online, use download=True (torchvision's CIFAR-10)"
    else:
        how += (f"; download=True is only offered for CIFAR-10 ({name} is fast.ai's "
                "imagenette2, https://github.com/fastai/imagenette, center-cropped and "
                "resized to 64 px with bicubic interpolation)")
    raise FileNotFoundError(f"archive {info.archive!r} for data set {name!r} not found; "
                            "looked in:\n  " + "\n  ".join(map(str, looked)) + f"\nTo fix: {how}.")


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):   # 1 MiB at a time: constant memory
            h.update(block)
    return h.hexdigest()


def _writable_root() -> Path:
    root = data_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()      # can we really write there?
    except OSError as e:
        raise type(e)(e.errno, f"cannot write to the data folder {str(root)!r} ({e.strerror}); "
                      "set VAR_TUTORIAL_DATA to a writable folder") from e
    return root


# ----------------------------------------------------------------------------------------
# 3. prepare: verify the archive, unpack it atomically, mark it complete.
# ----------------------------------------------------------------------------------------


def _count_images(split_dir: Path) -> int:
    return sum(1 for f in split_dir.glob("*/*") if f.is_file() and not f.name.startswith("."))


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def prepare(name: str, archive_dir: str | os.PathLike | None = None,
            download: bool = False) -> Path:
    """Unpack data set `name` into data_root()/<folder> on first use; return that folder."""
    info = get_info(name)
    root = _writable_root()
    target = root / info.folder
    if _is_complete(target):
        return target
    if target.exists():   # an interrupted or hand-made unpack: never trust it, redo it
        print(f"{target} has no {MARKER} marker (an interrupted unpack?): removing it")
        shutil.rmtree(target)

    # Everything is built in a temporary sibling folder and renamed into place at the
    # end, so `target` is either absent or whole, even if Python is killed midway.
    tmp = Path(tempfile.mkdtemp(prefix=f".{info.folder}-partial-", dir=root))
    try:
        try:
            archive = find_archive(name, archive_dir)
        except FileNotFoundError:
            if not (download and name == "cifar10"):
                raise
            archive, sha = None, DOWNLOADED
            _download_cifar10(tmp / info.folder, info)
        if archive is not None:
            sha = sha256_file(archive)
            if sha != info.sha256:
                raise BadFileError(f"checksum mismatch for {str(archive)!r}: expected sha256 "
                                   f"{info.sha256}, received {sha}; the file is damaged or "
                                 "not the expected archive")
            _extract(archive, tmp, total=sum(info.counts.values()))
        counts = _check_counts(tmp / info.folder, info, source=archive or "download")
        (tmp / info.folder / MARKER).write_text(json.dumps({"sha256": sha, "counts": counts}))
        try:
            (tmp / info.folder).rename(target)     # atomic on one file system
        except OSError:
            if not _is_complete(target):           # lost a race to another process?
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract(archive: Path, dest: Path, total: int) -> None:
    # "r|*" streams the archive front to back (xz cannot seek backwards cheaply).
    with tarfile.open(archive, "r|*") as tar, \
            tqdm(total=total, unit="img", desc=f"unpacking {archive.name}") as bar:
        for member in tar:
            bar.update(int(member.isfile()))
            if hasattr(tarfile, "data_filter"):   # Python >= 3.12 and 3.11.4+
                tar.extract(member, dest, filter="data")   # refuses ../, links out, etc.
            else:
                if member.name.startswith("/") or ".." in Path(member.name).parts or \
                        not (member.isfile() or member.isdir()):
                    raise BadFileError(f"unsafe entry {member.name!r} in {str(archive)!r}")
                tar.extract(member, dest)


def _check_counts(folder: Path, info: DatasetInfo, source) -> dict:
    counts = {}
    for split, sub in info.split_folders.items():
        counts[split] = _count_images(folder / sub) if (folder / sub).is_dir() else 0
        if counts[split] != info.counts[split]:
            raise BadFileError(f"{str(source)!r} gave {counts[split]} images in {sub}/, expected "
                               f"{info.counts[split]} in the layout "
                               f"{info.folder}/{sub}/<class>/<image>.jpg")
    return counts


def _download_cifar10(folder: Path, info: DatasetInfo) -> None:
    """Online fallback: torchvision's CIFAR-10 (original pixels, as lossless PNG files) in
    the same <split>/<class>/<image> layout as the archive, so the rest is unchanged."""
    import torchvision  # a second to import, for this download only
    for split, train in (("train", True), ("test", False)):
        ds = torchvision.datasets.CIFAR10(folder.parent / "download", train=train, download=True)
        seen = [0] * info.num_classes
        # ds.data: (N, 32, 32, 3) uint8 numpy array, ds.targets: N ints
        for img, label in tqdm(zip(ds.data, ds.targets), total=len(ds.data),
                               desc=f"writing {split}"):
            out = folder / info.split_folders[split] / info.class_folders[label]
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(out / f"{seen[label]:04d}.png")
            seen[label] += 1


# ----------------------------------------------------------------------------------------
# 4. load_split: decode every image once, keep the uint8 tensors in a cache file.
# ----------------------------------------------------------------------------------------


def load_split(name: str, split: str, archive_dir: str | os.PathLike | None = None,
               download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return images (N, 3, H, W) uint8 and labels (N,) int64, sorted by class then file."""
    info = get_info(name)
    _check_split(split)
    n, s = info.counts[split], info.image_size
    cache = data_root() / "cache" / f"{name}_{split}.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=True)   # plain tensors only, no pickled code
        if d.get("sha256") in (info.sha256, DOWNLOADED) and d["images"].shape == (n, 3, s, s) \
                and d["labels"].shape == (n,):
            return d["images"], d["labels"]
        print(f"{cache} is stale (another archive or size): decoding again")

    folder = prepare(name, archive_dir, download)
    images, labels = _decode_folder(folder / info.split_folders[split], info, split)
    sha = json.loads((folder / MARKER).read_text())["sha256"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=cache.name, suffix=".partial", dir=cache.parent)
    os.close(fd)
    try:   # write then rename: a reader never sees half a cache file
        torch.save({"images": images, "labels": labels, "sha256": sha}, tmp)
        os.chmod(tmp, 0o644)          # mkstemp makes it private; a cache may be shared
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return images, labels


def _decode_folder(split_dir: Path, info: DatasetInfo, split: str):
    layout = f"expected the layout {info.folder}/<split>/<class>/<image>.jpg"
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {str(split_dir)!r} not found; {layout}")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if found != sorted(info.class_folders):
        raise BadFileError(f"class folders in {str(split_dir)!r} are {found}; {layout} "
                           f"with class folders {list(info.class_folders)}")
    files, labels = [], []
    for label, cls in enumerate(info.class_folders):    # label = index in sorted order
        names = sorted(f for f in os.listdir(split_dir / cls) if not f.startswith("."))
        files += [split_dir / cls / f for f in names]
        labels += [label] * len(names)
    if len(files) != info.counts[split]:
        raise BadFileError(f"{str(split_dir)!r} holds {len(files)} files, expected "
                           f"{info.counts[split]}; {layout}")

    s = info.image_size
    images = torch.empty(len(files), 3, s, s, dtype=torch.uint8)   # (N, 3, H, W)
    for i, f in enumerate(tqdm(files, unit="img", desc=f"decoding {info.name}/{split}")):
        try:
            with Image.open(f) as im:      # PIL, as in torchvision's ImageFolder
                mode, hwc = im.mode, np.array(im)             # (H, W, C) uint8
        except (OSError, SyntaxError, ValueError) as e:
            raise BadFileError(f"{str(f)!r} is not a decodable image ({e})") from e
        if mode != "RGB" or hwc.shape != (s, s, 3):
            raise BadFileError(f"{str(f)!r} is {mode} with shape {hwc.shape} (H, W, C); "
                               f"expected RGB with shape ({s}, {s}, 3)")
        images[i] = torch.from_numpy(hwc).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return images, torch.tensor(labels, dtype=torch.int64)


# ----------------------------------------------------------------------------------------
# 5. A generated toy set: coloured shapes, for tests that need no real images.
# ----------------------------------------------------------------------------------------


def toy_dataset(n: int = 256, image_size: int = 32, num_classes: int = 10,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c = shape c % 3 (disc, square, stripes) in hue c / num_classes at a random
    position and size, on a dark noisy background. Same seed -> same tensors."""
    for arg, value, low in (("n", n, 1), ("image_size", image_size, 8),
                            ("num_classes", num_classes, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{arg}={value!r}: expected an integer >= {low}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(n, generator=g) % num_classes          # (n,) balanced classes
    s = image_size
    r = s * (0.15 + 0.15 * torch.rand(n, 1, 1, generator=g))      # (n, 1, 1) half-size
    cy, cx = (r + (s - 2 * r) * torch.rand(2, n, 1, 1, generator=g))  # centre inside image
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")  # (s, s)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2               # (n, s, s)
    square = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
    stripes = square & ((yy // 2) % 2 == 0)
    shape = labels.view(n, 1, 1) % 3
    mask = torch.where(shape == 0, disc, torch.where(shape == 1, square, stripes))

    # Hue -> RGB (HSV with full saturation and value), one colour per class.
    hue = labels.float() / num_classes                              # (n,)
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6      # (n, 3)
    colour = 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)         # (n, 3) in [0, 1]

    background = 0.15 + 0.08 * torch.randn(n, 3, s, s, generator=g)  # (n, 3, s, s)
    images = torch.where(mask[:, None], colour[:, :, None, None], background)
    return to_uint8(images * 2 - 1), labels.to(torch.int64)


# ----------------------------------------------------------------------------------------
# 6. The [-1, 1] convention, defined once.
# ----------------------------------------------------------------------------------------


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (what the tokenizers eat)."""
    if images_u8.dtype != torch.uint8:
        raise TypeError(f"images_u8 has dtype {images_u8.dtype}, expected torch.uint8")
    return images_u8.float() / 127.5 - 1.0


def to_uint8(images_float: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamped and rounded (what pictures and FID eat)."""
    return ((images_float.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------
# 7. Loaders: a seeded generator makes the shuffle order reproducible.
# ----------------------------------------------------------------------------------------


def make_loader(images_u8: torch.Tensor, labels: torch.Tensor, batch_size: int,
                shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                num_workers: int = 0) -> DataLoader:
    """Batches of (images (B, 3, H, W) uint8, labels (B,)); call to_float on the device."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1")
    if len(images_u8) != len(labels):
        raise ValueError(f"images_u8 has {len(images_u8)} items but labels has {len(labels)}; "
                         "expected the same number")
    return DataLoader(TensorDataset(images_u8, labels), batch_size=batch_size, shuffle=shuffle,
                      drop_last=drop_last, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------
# 8. For notebook 00: what each data set holds, from the registry (no files needed).
# ----------------------------------------------------------------------------------------


def class_names(name: str) -> list[str]:
    return list(get_info(name).class_names)


def describe(name: str) -> str:
    info = get_info(name)
    splits = ", ".join(f"{split} {info.counts[split]:,} (folder {info.split_folders[split]}/)"
                       for split in SPLITS)
    return (f"{name}: {splits}; {info.image_size}x{info.image_size} RGB; "
            f"{info.num_classes} classes: {', '.join(info.class_names)}")
