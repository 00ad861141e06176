"""train-classifier and evaluate: the classifier that judges generated images, and the
evaluation it judges (FID_cls and class agreement of a transformer's samples, over a CFG sweep)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..classifier import Classifier
from ..config import ClassifierConfig, ClassifierTrainConfig
from ..data import DATASETS, class_names, get_info
from ..metrics import FID_CLS_NOTE, evaluate_generator, inception_fid, sample_images
from ..pretrained import PRETRAINED_DIR, load_classifier, load_transformer, record_metrics, resolve
from ..records import write_results
from ..train import pick_device, train_classifier, training_set
from ..transformer import count_params
from .common import (
    add_device,
    at_least,
    check_image_size,
    default_transformer_file,
    export_run,
    megabytes,
    number,
    timed,
)


def train_and_export_classifier(ccfg: ClassifierConfig, tcfg: ClassifierTrainConfig, export, device=None,
                                compile: bool | None = None, minutes: float | None = None, results_folder=None,
                                name: str | None = None):
    """Train the classifier of tcfg.dataset, export its weights to `export` (its test accuracy in
    the sidecar) and write results/train_<name>.json (default train_classifier_<dataset>).
    Returns the trained model."""
    device = pick_device(device)
    n_params = count_params(Classifier(ccfg))
    print(f"training the {tcfg.dataset} classifier ({ccfg.arch}): {n_params / 1e6:.2f} M parameters, on {device}")
    (model, history, test), seconds = timed(train_classifier, ccfg, tcfg, device=device, compile=compile,
                                            minutes=minutes)
    path = export_run(model, export, "classifier", ccfg.to_dict(),
                      {f"{tcfg.dataset}_test": test, "train_seconds": round(seconds, 1)},
                      f"train_{name or 'classifier_' + tcfg.dataset}", history, seconds, {"parameters": n_params, "test": test},
                      {"model": ccfg.to_dict(), "train": tcfg.to_dict()}, device, results_folder)
    print(f"test accuracy {test['accuracy']:.2%}; saved {export} ({megabytes(export)}) and {path} "
          f"after {seconds / 60:.1f} min")
    return model


def add_train_classifier(sub) -> None:
    c = sub.add_parser("train-classifier", help="train the evaluation classifier (FID_cls, class agreement)")
    c.add_argument("--dataset", default="cifar10", choices=[*DATASETS, "toy"], help="'toy': generated images")
    c.add_argument("--epochs", type=at_least(1), default=40)
    c.add_argument("--minutes", type=at_least(0.01, float, "a number of minutes"), default=None,
                   help="time budget: replaces --epochs by the steps that fit")
    c.add_argument("--batch-size", type=at_least(1), default=512)
    c.add_argument("--lr", type=number("(0, inf)", what="a learning rate"), default=0.4)
    c.add_argument("--arch", default="resnet9", choices=["resnet9", "resnet18"],
                   help="resnet9: the project's judge; resnet18: torchvision's ResNet-18, the second judge")
    c.add_argument("--width", type=at_least(1), default=64, help="channels of the first conv (64: 2.4 M parameters)")
    c.add_argument("--crop-pad", type=at_least(0), default=None,
                   help="random crops of the image padded by N pixels (default: image size / 8)")
    c.add_argument("--cutout", type=at_least(0), default=None,
                   help="side of the square cut out of each training image, 0: none (default: image size / 4)")
    c.add_argument("--seed", type=at_least(0), default=0)
    c.add_argument("--subset", type=at_least(0), default=0, help="train on N images only, spread over the classes")
    c.add_argument("--export", default=None, help="default data/pretrained/classifier_<dataset>.safetensors "
                   "(classifier_resnet18_<dataset> for --arch resnet18)")
    c.add_argument("--name", default=None, help="results/train_<name>.json (default classifier_<dataset>, "
                   "classifier_resnet18_<dataset> for --arch resnet18)")
    c.add_argument("--no-compile", action="store_true")
    add_device(c)
    c.set_defaults(func=cmd_train_classifier)


def cmd_train_classifier(args):
    # the ResNet-18's head is not scaled down: its averaged features are already small
    ccfg = ClassifierConfig(width=args.width, arch=args.arch, logit_scale=0.125 if args.arch == "resnet9" else 1.0)
    # the augmentation grows with the image: crops padded by S/8 and a cutout square of side S/4
    size = get_info(args.dataset).image_size if args.dataset in DATASETS else 32
    tcfg = ClassifierTrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed, subset=args.subset,
                                 crop_pad=size // 8 if args.crop_pad is None else args.crop_pad,
                                 cutout=size // 4 if args.cutout is None else args.cutout)
    name = args.name or ("classifier_" if args.arch == "resnet9" else "classifier_resnet18_") + args.dataset
    export = Path(args.export or PRETRAINED_DIR / f"{name}.safetensors")
    train_and_export_classifier(ccfg, tcfg, export, device=args.device, compile=False if args.no_compile else None,
                                minutes=args.minutes, name=name)


def evaluate_transformer(kind: str, weights=None, tokenizer=None, classifier="classifier_cifar10",  # or a list
                         dataset: str = "cifar10", cfg_values=(0, 1, 1.5, 2, 3), samples_per_class: int = 1000,
                         batch_size: int = 1000, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0,
                         seed: int = 0, limit_real: int = 0, with_inception_fid: bool = False,
                         results_name: str | None = None, device=None, results_folder=None) -> dict:
    """The `evaluate` command as a function: samples of every class at each CFG strength,
    judged by the classifier (metrics.evaluate_generator), written to
    results/<results_name or kind_dataset>.json; the headline numbers also go to the weights'
    sidecar. Returns the metrics."""
    device = pick_device(device)
    weights = weights or default_transformer_file(kind, dataset)
    model, tokenizer = load_transformer(weights, tokenizer=tokenizer, device=device)
    if model.cfg.kind != kind:
        raise ValueError(f"--weights {weights} holds a {model.cfg.kind!r} transformer: expected --model {kind}")
    check_image_size(dataset, tokenizer.cfg.image_size, weights)
    classifier, *seconds = [classifier] if isinstance(classifier, (str, Path)) else classifier
    judge = load_classifier(classifier, device=device)
    judges = {Path(str(c)).stem: load_classifier(c, device=device) for c in seconds}  # second judges, by file name
    S = tokenizer.cfg.image_size
    test = training_set(dataset, "test", S, limit_real)
    train_u8 = training_set(dataset, "train", S, limit_real)[0]
    sampling = {"samples_per_class": samples_per_class, "cfg": cfg_values, "top_k": top_k, "top_p": top_p,
                "temperature": temperature, "seed": seed, "batch_size": batch_size}
    t0 = time.time()
    m = evaluate_generator(model, tokenizer, judge, test, train_u8, cfg_values=cfg_values, judges=judges,
                           **{k: v for k, v in sampling.items() if k != "cfg"})
    if with_inception_fid:
        labels = torch.arange(model.cfg.num_classes).repeat_interleave(samples_per_class)
        fake = sample_images(model, tokenizer, labels, m["best_cfg"], batch_size, seed, top_k, top_p, temperature)
        m["inception_fid_at_best_cfg"] = round(inception_fid(fake, test[0], device=device), 4)
    m.update(weights=str(weights), classifier=str(classifier), **({"second_judges": [str(c) for c in seconds]}
                                                                    if seconds else {}), parameters=count_params(model),
             parameters_blocks_and_head=count_params(model.blocks) + count_params(model.head),
             class_names=class_names(dataset) if dataset in DATASETS else None,
             evaluate_seconds=round(time.time() - t0, 1))
    path = write_results(results_name or f"{kind}_{dataset}", m, device=device, out_dir=results_folder,
                         config={"model": model.cfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict(),
                                 "classifier": judge.cfg.to_dict(), "sampling": sampling,
                                 **({"judges": {n: j.cfg.to_dict() for n, j in judges.items()}} if judges else {})})
    if resolve(weights).with_suffix(".json").exists():  # the weights' sidecar keeps the headline numbers
        key = f"{dataset}_test" + (f"_{samples_per_class}_per_class" if samples_per_class != 1000 else "") \
            + (f"_real{limit_real}" if limit_real else "")  # a quick run never overwrites the full one
        record_metrics(weights, key, {k: m[k] for k in (
            "best_cfg", "best_fid_cls", "best_class_agreement", "max_class_agreement", "samples_per_class")})
    for name, v in [(str(classifier), m), *m.get("judges", {}).items()]:
        print(f"{name}: best cfg {v['best_cfg']:g}: FID_cls {v['best_fid_cls']:.3f} (floor, test vs train: "
              f"{v.get('fid_cls_floor_test_vs_train', float('nan')):.3f}), "
              f"class agreement {v['best_class_agreement']:.1%}")
    print(f"wrote {path}")
    return m


def add_evaluate(sub) -> None:
    v = sub.add_parser("evaluate", help="FID_cls and class agreement of generated samples (not Inception FID)",
                       description="Generate --samples-per-class images of every class with each CFG strength, "
                       "classify them, and write results/<model>_<dataset>.json. " + FID_CLS_NOTE)
    v.add_argument("--model", required=True, choices=["var", "raster"])
    v.add_argument("--weights", default=None, help="default var_<dataset> (shipped) or runs/raster_<dataset>/")
    v.add_argument("--tokenizer", default=None, help="default: the one recorded in the weights")
    v.add_argument("--classifier", nargs="+", default=["classifier_cifar10"],
                   help="the judge; more files are second judges, measuring the same samples "
                   "(e.g. classifier_cifar10 runs/judges/classifier_resnet18_cifar10.safetensors)")
    v.add_argument("--dataset", default="cifar10", choices=[*DATASETS, "toy"],
                   help="the real images compared with ('toy' for tests)")
    v.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), nargs="+", default=[0, 1, 1.5, 2, 3],
                   help="CFG strengths to sweep; the best (lowest FID_cls) is marked")
    v.add_argument("--samples-per-class", type=at_least(1, what="an integer (images generated per class)"),
                   default=1000)
    v.add_argument("--batch-size", type=at_least(1), default=1000)
    v.add_argument("--top-k", type=at_least(0), default=0)
    v.add_argument("--top-p", type=number("(0, 1]", what="a probability"), default=1.0)
    v.add_argument("--temperature", type=number("(0, inf)", what="a temperature"), default=1.0)
    v.add_argument("--seed", type=at_least(0), default=0)
    v.add_argument("--limit-real", type=at_least(0), default=0,
                   help="use N real images of each split, spread over the classes (tests)")
    v.add_argument("--inception-fid", action="store_true", help="also Inception FID at the best cfg (needs "
                   "torchmetrics, torch-fidelity and a download)")
    v.add_argument("--results", default=None, help="results file name (default <model>_<dataset>)")
    add_device(v)
    v.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args):
    evaluate_transformer(args.model, args.weights, args.tokenizer, args.classifier, args.dataset, args.cfg,
                         args.samples_per_class, args.batch_size, args.top_k, args.top_p, args.temperature, args.seed,
                         args.limit_real, args.inception_fid, args.results, args.device)


def register(sub) -> None:
    add_train_classifier(sub)
    add_evaluate(sub)
