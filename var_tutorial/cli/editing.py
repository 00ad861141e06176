"""edit and eval-editing: zero-shot in-painting, out-painting and class edits with VAR (editing.py)."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from ..data import REPO_ROOT, class_names, load_split
from ..editing import box_mask, edit_var, region_mask
from ..metrics import evaluate_editing
from ..pretrained import load_classifier, load_transformer
from ..records import write_results
from ..train import pick_device
from .common import add_device, at_least


def read_image(path: Path, size: int, resize: bool) -> torch.Tensor:
    """A PNG or JPEG file -> uint8 (3, size, size); a wrong size is an error unless resize."""
    # torchvision takes a second to import, and only this command reads image files: imported here
    from torchvision.transforms.functional import center_crop, pil_to_tensor
    from torchvision.transforms.functional import resize as resize_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as pil:
            img = pil_to_tensor(pil.convert("RGB"))  # uint8 (3, H, W)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"image {path} could not be decoded ({e}): expected a PNG or JPEG file") from None
    if tuple(img.shape[-2:]) != (size, size):
        if not resize:
            raise ValueError(f"image {path} is {img.shape[-1]}x{img.shape[-2]}: expected {size}x{size} "
                             "(add --resize to centre-crop and resize it)")
        side = min(img.shape[-2:])
        img = resize_image(center_crop(img, [side, side]), [size, size], antialias=True)
    return img


def edit_mask(args, size: int) -> torch.Tensor:
    """The region to regenerate, (size, size) bool: from --mask-file (white), --box or --region."""
    if args.mask_file:
        m = read_image(args.mask_file, size, args.resize).float().mean(0) / 255  # white = regenerate
        return m > 0.5
    if args.box:
        return box_mask(size, *args.box)
    return region_mask(size, args.region)


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
    ed.add_argument("--dataset", default="cifar10", help="whose class names --target uses")
    ed.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0)
    ed.add_argument("--blend", default="none", choices=["none", "latent", "pixel"])
    ed.add_argument("--seed", type=int, default=0)
    ed.add_argument("--resize", action="store_true", help="centre-crop and resize inputs of another size")
    ed.add_argument("--out", default=str(REPO_ROOT / "outputs" / "edits"))
    add_device(ed)
    ed.set_defaults(func=cmd_edit)


def cmd_edit(args):
    from torchvision.utils import save_image  # torchvision: see read_image

    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    S = tokenizer.cfg.image_size
    images = torch.stack([read_image(p, S, args.resize) for p in args.images])
    mask = edit_mask(args, S)
    label = None
    if args.target is not None:
        names = class_names(args.dataset)
        if args.target in names:
            label = names.index(args.target)
        elif args.target.isdigit():
            label = int(args.target)  # edit_var says so if it is out of range
        else:
            raise ValueError(f"--target {args.target!r}: expected a class index or one of {names}")
    generator = torch.Generator(device).manual_seed(args.seed)
    edited = edit_var(model, tokenizer, images, mask, label, cfg=args.cfg, generator=generator, blend=args.blend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, img in zip(args.images, edited):
        target = out / f"{Path(path).stem}_edited.png"
        save_image((img.cpu() + 1) / 2, target)
        print(f"wrote {target}")


def add_eval_editing(sub) -> None:
    ee = sub.add_parser("eval-editing", help="measure in-painting, out-painting and class edits -> "
                        "results/editing_<dataset>.json")
    ee.add_argument("--weights", default="var_cifar10")
    ee.add_argument("--raster-weights", default=None, help="the raster baseline to compare with (not shipped)")
    ee.add_argument("--classifier", default="classifier_cifar10")
    ee.add_argument("--dataset", default="cifar10")
    ee.add_argument("--images", type=at_least(10), default=1000, help="test images, the same number of each class")
    ee.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0,
                    help="guidance of the class edits (the tasks without a class have none)")
    ee.add_argument("--batch-size", type=at_least(1), default=500)
    ee.add_argument("--seed", type=int, default=0)
    ee.add_argument("--results", default=None)
    add_device(ee)
    ee.set_defaults(func=cmd_eval_editing)


def cmd_eval_editing(args):
    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    raster, vqvae = load_transformer(args.raster_weights, device=device) if args.raster_weights else (None, None)
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
