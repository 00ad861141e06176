"""The evaluation classifier: its size, its augmentation, and that it learns (on toy data here;
on CIFAR-10 it is trained on a GPU by `python -m var_tutorial train-classifier`)."""
import json

import pytest
import torch
import torch.nn.functional as F
from test_train_transformer import one_thread  # noqa: F401  (an autouse fixture)

import var_tutorial.classifier as classifier_module
from var_tutorial.classifier import Classifier, augment, features_and_logits
from var_tutorial.cli import main
from var_tutorial.config import ClassifierConfig, ClassifierTrainConfig
from var_tutorial.pretrained import load_classifier, save_weights
from var_tutorial.train import train_classifier, training_set


def test_size_and_shapes():
    model = Classifier(ClassifierConfig())
    n = sum(p.numel() for p in model.parameters())
    assert 1e6 <= n <= 3e6 and 2 * n <= 6e6  # ships in float16 within 6 MB
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert model.features(x).shape == (2, 256) and model(x).shape == (2, 10)
    assert model.feature_dim == 256
    assert f"{n / 1e6:.2f} M parameters at w = 64" in classifier_module.__doc__  # the docstring states the size


def test_augment_crops_and_flips_repeatably():
    x = torch.randn(16, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0))) and a.shape == x.shape
    only_flips = augment(x, torch.Generator().manual_seed(1), pad=0)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(only_flips, x)]
    assert all(torch.equal(o, xi) or f for o, xi, f in zip(only_flips, x, flipped)) and 0 < sum(flipped) < 16
    # with padding every output is an 8x8 window of the (reflection-)padded image, possibly mirrored
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # (B, 3, 9, 9, 8, 8)
    for b in range(16):
        candidates = windows[b].permute(1, 2, 0, 3, 4).reshape(81, 3, 8, 8)
        assert any(torch.equal(a[b], c) or torch.equal(a[b], c.flip(-1)) for c in candidates)


def test_it_learns_toy_classes_and_round_trips(tmp_path):
    data = (training_set("toy", "train", 16, 320), training_set("toy", "test", 16, 200))
    tcfg = ClassifierTrainConfig(dataset="toy", epochs=8, batch_size=32, lr=0.1, log_every=10)
    model, history, test = train_classifier(ClassifierConfig(width=8), tcfg, device="cpu", progress=False, data=data)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert test["accuracy"] >= 0.9 and test["images"] == 200 and len(test["accuracy_per_class"]) == 10
    path = save_weights(model, tmp_path / "c.safetensors", "classifier", model.cfg.to_dict(), dtype=torch.float32)
    again = load_classifier(path)
    f1, l1 = features_and_logits(model, data[1][0])
    f2, l2 = features_and_logits(again, data[1][0])
    assert torch.equal(f1, f2) and torch.equal(l1, l2)
    with pytest.raises(ValueError, match=r"images_u8 has dtype torch.float32: expected uint8"):
        features_and_logits(model, data[1][0].float())


def test_train_classifier_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    main(["train-classifier", "--dataset", "toy", "--subset", "64", "--epochs", "2", "--batch-size", "32", "--width",
          "4", "--lr", "0.05", "--export", str(tmp_path / "cls.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "train_classifier_toy.json").read_text())
    assert record["metrics"]["history"][-1]["step"] == 4 and 0 <= record["metrics"]["test"]["accuracy"] <= 1
    assert "toy_test" in json.loads((tmp_path / "cls.json").read_text())["metrics"]
    assert load_classifier(tmp_path / "cls.safetensors").cfg.width == 4


def test_the_augmentation_grows_with_the_image(tmp_path, monkeypatch):
    """At 64 px (Imagenette) the crops are padded by 8 pixels and the cutout square is 16 wide,
    twice CIFAR-10's 4 and 8; both can be set by hand."""
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    main(["train-classifier", "--dataset", "imagenette64", "--subset", "20", "--epochs", "1", "--batch-size", "10",
          "--width", "4", "--export", str(tmp_path / "c64.safetensors"), "--device", "cpu", "--no-compile"])
    record = json.loads((tmp_path / "train_classifier_imagenette64.json").read_text())
    assert (record["config"]["train"]["crop_pad"], record["config"]["train"]["cutout"]) == (8, 16)
    assert record["metrics"]["test"]["images"] == 20  # --subset takes 20 images of each split, two per class
    main(["train-classifier", "--dataset", "toy", "--subset", "16", "--epochs", "1", "--batch-size", "8", "--width", "4",
          "--crop-pad", "0", "--cutout", "0", "--export", str(tmp_path / "t.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "train_classifier_toy.json").read_text())
    assert (record["config"]["train"]["crop_pad"], record["config"]["train"]["cutout"]) == (0, 0)


def test_crops_without_padding_leave_the_image_or_its_mirror():
    x = torch.rand(6, 3, 8, 8)
    out = augment(x, torch.Generator().manual_seed(0), pad=0)
    for a, b in zip(x, out):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)


def test_the_second_judge_is_a_resnet18_built_and_named_apart(tmp_path, monkeypatch):
    """--arch resnet18: torchvision's ResNet-18 with the small-image stem (a 16 px image keeps
    its 16 px through the stem), 512 average-pooled features, its own results file and weights
    name, and it round-trips through safetensors. The project's judge is unchanged."""
    model = Classifier(ClassifierConfig(arch="resnet18", logit_scale=1.0))
    n = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n < 11.3e6 and model.feature_dim == 512
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())  # a different build: no max pool
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert model.net.conv1(x).shape == (2, 64, 16, 16) and model.features(x).shape == (2, 512)
    assert model(x).shape == (2, 10)
    with pytest.raises(ValueError, match=r"width=32 with arch='resnet18'"):
        ClassifierConfig(arch="resnet18", width=32)
    with pytest.raises(ValueError, match=r"arch='vgg': expected 'resnet9'"):
        ClassifierConfig(arch="vgg")
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    main(["train-classifier", "--arch", "resnet18", "--dataset", "toy", "--subset", "32", "--epochs", "1",
          "--batch-size", "16", "--seed", "1", "--export", str(tmp_path / "judge2.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "train_classifier_resnet18_toy.json").read_text())
    assert record["config"]["model"]["arch"] == "resnet18" and record["config"]["train"]["seed"] == 1
    judge = load_classifier(tmp_path / "judge2.safetensors")
    assert judge.cfg.arch == "resnet18" and judge.cfg.logit_scale == 1.0
    images = training_set("toy", "test", 16, 8)[0]
    assert features_and_logits(judge, images)[0].shape == (8, 512)
    assert Classifier(ClassifierConfig.from_dict({"width": 64, "num_classes": 10, "logit_scale": 0.125})).cfg.arch \
        == "resnet9"  # a config written before the second judge existed
