"""Training the evaluation classifier: images -> classes, loss = label-smoothed cross entropy.

The judge of generated samples (metrics.py's FID_cls and class agreement), trained with the
fast-CIFAR recipe of ClassifierTrainConfig: SGD with Nesterov momentum, warm-up and decay,
random crops, flips and cutout. No checkpoints: the whole run takes about two minutes on one GPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..classifier import Classifier, augment, cutout, features_and_logits
from ..config import ClassifierConfig, ClassifierTrainConfig
from ..data import to_float
from ..metrics import class_agreement
from .loop import Steps, batch_indices, compiled, lr_at, param_groups, set_lr, setup_device, training_set


def train_classifier(ccfg: ClassifierConfig, tcfg: ClassifierTrainConfig, device=None, compile=None,
                     minutes: float | None = None, progress: bool = True, data=None):
    """Train the evaluation classifier; returns (model, history, test metrics).

    data: ((train images uint8, labels), (test images uint8, labels)); by default tcfg.dataset.
    No checkpoints: the whole run takes about two minutes on one GPU.
    """
    device, use_cuda = setup_device(device)
    if data is None:
        data = tuple(training_set(tcfg.dataset, split, subset=tcfg.subset) for split in ("train", "test"))
    (images, labels), (test_images, test_labels) = data
    images, labels = images.to(device), labels.to(device)
    torch.manual_seed(tcfg.seed)
    model = Classifier(ccfg).to(device)
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, momentum=0.9, nesterov=True)
    per_epoch = max(1, len(images) // tcfg.batch_size)
    compile = use_cuda if compile is None else compile
    fwd = compiled(model, compile)
    history = []
    model.train()
    loop = Steps(0, tcfg.epochs * per_epoch, minutes, None, use_cuda, "classifier", progress)
    while loop.running:
        b = batch_indices(len(images), loop.step, tcfg.batch_size, tcfg.seed).to(device)
        gen = torch.Generator().manual_seed(tcfg.seed * 7_919 + loop.step)
        x = augment(to_float(images[b]), gen, tcfg.crop_pad)
        if tcfg.cutout:
            x = cutout(x, gen, tcfg.cutout)
        if use_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(loop.step, loop.total, tcfg.lr, round(tcfg.warmup_fraction * loop.total), 0.0)
        set_lr(opt, lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
            logits = fwd(x).float()
        loss = F.cross_entropy(logits, labels[b], label_smoothing=tcfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step = loop.advance()
        if step % tcfg.log_every == 0 or loop.finished:
            history.append({"step": step, "epoch": round(step / per_epoch, 2), "loss": loss.item(),
                            "batch_accuracy": (logits.argmax(1) == labels[b]).float().mean().item(),
                            "lr": lr, "seconds": loop.seconds})
            loop.bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
    loop.close()
    model.eval()
    test = class_agreement(features_and_logits(model, test_images)[1].argmax(1), test_labels, ccfg.num_classes)
    return model, history, {"images": len(test_labels), "accuracy": test["overall"],
                            "accuracy_per_class": test["per_class"]}
