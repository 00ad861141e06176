"""prepare-data: unpack and decode a data set archive into data/ (data.py)."""
from __future__ import annotations

from pathlib import Path

from ..data import DATASETS, get_info, load_split


def add_prepare_data(sub) -> None:
    d = sub.add_parser("prepare-data", help="unpack and cache a data set")
    d.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    d.add_argument("--archive-dir", default=None, help="folder holding <dataset>.tar.xz")
    d.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if no archive")
    d.set_defaults(func=cmd_prepare_data)


def cmd_prepare_data(args):
    if args.archive_dir and not Path(args.archive_dir).is_dir():
        raise FileNotFoundError(f"--archive-dir {args.archive_dir} is not a folder: expected the folder that holds "
                                f"{get_info(args.dataset).archive}")
    for split in ("train", "test"):
        images, labels = load_split(args.dataset, split, archive_dir=args.archive_dir, download=args.download)
        print(f"{args.dataset}/{split}: {tuple(images.shape)} uint8, {len(labels.unique())} classes")


def register(sub) -> None:
    add_prepare_data(sub)
