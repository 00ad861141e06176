"""edit and eval-editing: zero-shot in-painting, out-painting and class edits with VAR (editing.py)."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data import DATASETS, REPO_ROOT, BadFileError, class_names, load_split
from ..editing import box_mask, edit_var, region_mask
from ..metrics import evaluate_editing
from ..pretrained import load_classifier, load_transformer
from ..records import write_results
from ..train import pick_device
from .common import add_device, at_least, check_image_size, note, out_folder


def read_image(path: Path, size: int, resize: bool, what: str = "image") -> torch.Tensor:
    """A PNG or JPEG file -> uint8 (3, size, size); a wrong size is an error unless resize, which
    centre-crops and resizes it. What is lost on the way (an alpha channel, the low bits of
    16-bit grey, pixels by enlarging a small image) is said in a note on stderr."""
    # torchvision takes a second to import, and only this command reads image files: imported here
    from torchvision.transforms.functional import center_crop, pil_to_tensor
    from torchvision.transforms.functional import resize as resize_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # PIL's warning for a huge image becomes its error
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as pil:
                if pil.mode == "I" or pil.mode.startswith("I;16"):  # 16-bit grey: RGB would clip it to white
                    note(f"{what} {path} has 16-bit grey levels: kept their 8 high bits")
                    pil = Image.fromarray((np.asarray(pil) >> 8).clip(0, 255).astype(np.uint8))
                elif "A" in pil.mode or "transparency" in pil.info:
                    note(f"{what} {path} is {pil.mode} with transparency: its alpha channel is dropped "
                         "(transparent pixels keep the colour stored under them)")
                img = pil_to_tensor(pil.convert("RGB"))  # uint8 (3, H, W)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadFileError(f"{what} {path} is too large to decode safely ({e}): expected an image of at most "
                           f"{Image.MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError) as e:
        raise BadFileError(f"{what} {path} could not be decoded ({e}): expected a PNG or JPEG file") from None
    h, w = img.shape[-2:]
    if (h, w) != (size, size):
        if not resize:
            raise BadFileError(f"{what} {path} is {w}x{h}: expected {size}x{size} "
                               "(add --resize to centre-crop and resize it)")
        side = min(h, w)
        img = resize_image(center_crop(img, [side, side]), [size, size], antialias=True)
        done = [f"centre-cropped to {side}x{side}"] * (h != w) + [f"resized to {size}x{size}"] * (side != size)
        enlarged = f" (enlarged {size / side:g} times: expect a blurred picture)" if side < size else ""
        note(f"{what} {path} is {w}x{h}: {' and '.join(done)}{enlarged}")
    return img


def edit_mask(args, size: int) -> torch.Tensor:
    """The region to regenerate, (size, size) bool: from --mask-file (white), --box or --region;
    one that would regenerate nothing, or everything, is refused."""
    if args.mask_file:
        given = f"--mask-file {args.mask_file}"
        mask = read_image(args.mask_file, size, args.resize, "--mask-file").float().mean(0) > 127.5  # white
    elif args.box:
        given = "--box " + " ".join(map(str, args.box))
        mask = box_mask(size, *args.box)
    else:
        return region_mask(size, args.region)
    if not mask.any():
        raise ValueError(f"{given} marks no pixel to regenerate: expected white where the image is to change")
    if mask.all():
        raise ValueError(f"{given} covers the whole {size}x{size} image: expected a part of it to keep "
                         "(editing keeps the rest; for a new image, sample one)")
    return mask


def target_label(args, image_size: int, num_classes: int) -> int | None:
    """--target as a class index (None: no class): a class name of --dataset (by default the data
    set whose images are the weights' size) or an index below num_classes."""
    if args.dataset:
        check_image_size(args.dataset, image_size, args.weights)
    if args.target is None:
        return None
    dataset = args.dataset or next((name for name, info in DATASETS.items() if info.image_size == image_size), None)
    names = class_names(dataset) if dataset else []
    if args.target in names:
        return names.index(args.target)
    if args.target.isdigit() and int(args.target) < num_classes:
        return int(args.target)
    raise ValueError(f"--target {args.target!r}: expected a class index in [0, {num_classes - 1}]"
                     + (f" or one of the {dataset} classes {names}" if names else ""))


def add_edit(sub) -> None:
    ed = sub.add_parser("edit", help="zero-shot in-painting, out-painting or class edit of PNG/JPEG images with VAR",
                        description="Regenerate part of each image with VAR and keep the rest (editing.py). "
                        "The region: --region (a preset), --box, or --mask-file (white = regenerate).")
    ed.add_argument("images", nargs="+", help="PNG or JPEG files, 32x32 for the CIFAR-10 model (or --resize)")
    ed.add_argument("--weights", default="var_cifar10")
    region = ed.add_mutually_exclusive_group()
    region.add_argument("--region", default="centre", choices=["centre", "top", "bottom", "left", "right", "frame"],
                        help="centre: the middle quarter; top/bottom/left/right: that half; frame: out-painting")
    region.add_argument("--box", type=int, nargs=4, metavar=("TOP", "LEFT", "HEIGHT", "WIDTH"))
    region.add_argument("--mask-file", default=None, help="an image the size of the inputs, white = regenerate")
    ed.add_argument("--target", default=None, help="a class name or index to edit towards (default: no class)")
    ed.add_argument("--dataset", default=None, choices=list(DATASETS),
                    help="whose class names --target uses (default: the data set of the weights' image size)")
    ed.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0)
    ed.add_argument("--blend", default="none", choices=["none", "latent", "pixel"])
    ed.add_argument("--seed", type=at_least(0), default=0)
    ed.add_argument("--resize", action="store_true", help="centre-crop and resize inputs of another size")
    ed.add_argument("--out", default=str(REPO_ROOT / "outputs" / "edits"))
    add_device(ed)
    ed.set_defaults(func=cmd_edit)


def cmd_edit(args):
    from torchvision.utils import save_image  # torchvision: see read_image

    out = out_folder(args.out)
    targets = [out / f"{Path(path).stem}_edited.png" for path in args.images]
    for path, target in zip(args.images, targets):
        if targets.count(target) > 1:
            raise ValueError(f"image {path}: two inputs named {Path(path).stem}.* would both be written to {target}: "
                             "expected images with different names")
    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    S = tokenizer.cfg.image_size
    label = target_label(args, S, model.cfg.num_classes)
    images = torch.stack([read_image(p, S, args.resize) for p in args.images])
    mask = edit_mask(args, S)
    generator = torch.Generator(device).manual_seed(args.seed)
    edited = edit_var(model, tokenizer, images, mask, label, cfg=args.cfg, generator=generator, blend=args.blend)
    for target, img in zip(targets, edited):
        save_image((img.cpu() + 1) / 2, target)
        print(f"wrote {target}")


def add_eval_editing(sub) -> None:
    ee = sub.add_parser("eval-editing", help="measure in-painting, out-painting and class edits -> "
                        "results/editing_<dataset>.json")
    ee.add_argument("--weights", default="var_cifar10")
    ee.add_argument("--raster-weights", default=None, help="the raster baseline to compare with (not shipped)")
    ee.add_argument("--classifier", default="classifier_cifar10")
    ee.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    ee.add_argument("--images", type=at_least(10), default=1000, help="test images, the same number of each class")
    ee.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0,
                    help="guidance of the class edits (the tasks without a class have none)")
    ee.add_argument("--batch-size", type=at_least(1), default=500)
    ee.add_argument("--seed", type=at_least(0), default=0)
    ee.add_argument("--results", default=None)
    add_device(ee)
    ee.set_defaults(func=cmd_eval_editing)


def cmd_eval_editing(args):
    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    check_image_size(args.dataset, tokenizer.cfg.image_size, args.weights)
    raster, vqvae = load_transformer(args.raster_weights, device=device) if args.raster_weights else (None, None)
    if raster is not None and raster.cfg.kind != "raster":
        raise ValueError(f"--raster-weights {args.raster_weights} holds a {raster.cfg.kind!r} transformer: "
                         "expected the raster baseline's weights")
    classifier = load_classifier(args.classifier, device=device)
    images, labels = load_split(args.dataset, "test")
    per_class = args.images // model.cfg.num_classes
    pick = torch.cat([(labels == c).nonzero().flatten()[:per_class] for c in range(model.cfg.num_classes)])
    t0 = time.time()
    m = evaluate_editing(model, tokenizer, classifier, images[pick], labels[pick], raster, vqvae, cfg=args.cfg,
                         batch_size=args.batch_size, seed=args.seed)
    m.update(weights=str(args.weights), raster_weights=args.raster_weights, classifier=str(args.classifier),
             evaluate_seconds=round(time.time() - t0, 1))
    path = write_results(args.results or f"editing_{args.dataset}", m, device=device)
    for task, r in m["tasks"].items():
        verdict = "keeps_true_class" if r["labels"] == "none" else "target_class_rate"
        print(f"{task}: " + "; ".join(f"{name} {v['psnr_outside_db']:.1f} dB outside, {verdict} {v[verdict]:.1%}"
                                      for name, v in r.items() if isinstance(v, dict)))
    print(f"wrote {path}")


def register(sub) -> None:
    add_edit(sub)
    add_eval_editing(sub)
