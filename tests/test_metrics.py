"""FID_cls against closed forms, class agreement, and `evaluate` end to end on tiny models."""
import json

import pytest
import torch
from test_train_transformer import one_thread  # noqa: F401  (an autouse fixture)

from var_tutorial.classifier import Classifier
from var_tutorial.cli import main
from var_tutorial.config import ClassifierConfig, tokenizer_preset, transformer_config
from var_tutorial.metrics import (
    class_agreement,
    evaluate_generator,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_fid,
    sample_images,
    sqrtm_psd,
)
from var_tutorial.pretrained import save_weights, transformer_record
from var_tutorial.train import training_set
from var_tutorial.transformer import build_transformer
from var_tutorial.vqvae import VQVAE


def gaussian(n=4000, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ A.T  # covariance A A^T


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian()
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fid_against_a_shifted_copy_is_the_squared_shift():
    x = gaussian()
    shift = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.0, 0.0, 0.3, 0.0], dtype=torch.float64)
    assert fid_from_features(x, x + shift) == pytest.approx(shift.square().sum().item(), rel=1e-9)


def test_frechet_distance_matches_closed_forms():
    # diagonal covariances: ||mu1 - mu2||^2 + sum_i (s1_i - s2_i)^2 with s = standard deviations
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([4.0, 1.0, 0.25])
    mu1, mu2 = torch.zeros(3), torch.tensor([1.0, 2.0, 0.0])
    want = 5.0 + ((s1.sqrt() - s2.sqrt()) ** 2).sum().item()
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(want, rel=1e-12)
    # general covariances: tr((S1 S2)^(1/2)) from the (real, non-negative) eigenvalues of S1 S2
    S1, S2 = torch.cov(gaussian(seed=1).T), torch.cov(gaussian(seed=2).T)
    tr_sqrt = torch.linalg.eigvals(S1 @ S2).real.clamp_min(0).sqrt().sum()
    want = (S1.trace() + S2.trace() - 2 * tr_sqrt).item()
    assert frechet_distance(torch.zeros(8), S1, torch.zeros(8), S2) == pytest.approx(want, rel=1e-9)


def test_sqrtm_and_statistics():
    S = torch.cov(gaussian().T)
    R = sqrtm_psd(S)
    assert torch.allclose(R @ R, S, atol=1e-12) and torch.allclose(R, R.T)
    with pytest.raises(ValueError, match=r"features have shape \(1, 8\): expected \(N, D\) with N >= 2"):
        feature_statistics(torch.zeros(1, 8))


def test_class_agreement():
    a = class_agreement(torch.tensor([0, 1, 1, 2, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 2]), 3)
    assert a["overall"] == pytest.approx(0.5)
    assert a["per_class"] == [0.5, 0.5, 0.5] and a["confusion"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]


# -- evaluation end to end, on untrained tiny models ------------------------------------------
@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny VAR, its tokenizer and a tiny classifier, saved as weights files (untrained)."""
    d = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(0)
    tokenizer = VQVAE(tokenizer_preset("tiny")).eval()
    save_weights(tokenizer, d / "tok.safetensors", "tokenizer", tokenizer.cfg.to_dict(), dtype=torch.float32)
    cfg = transformer_config("var", "tiny", tokenizer.cfg)
    model = build_transformer(cfg)
    save_weights(model, d / "var.safetensors", "transformer", transformer_record(cfg, tokenizer, d / "tok.safetensors"))
    classifier = Classifier(ClassifierConfig(width=4)).eval()
    save_weights(classifier, d / "cls.safetensors", "classifier", classifier.cfg.to_dict())
    return d, model.eval(), tokenizer, classifier


def test_evaluate_writes_results_with_sweep_floor_and_note(tiny_files, tmp_path, monkeypatch):
    d, *_ = tiny_files
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    main(["evaluate", "--model", "var", "--weights", str(d / "var.safetensors"), "--classifier",
          str(d / "cls.safetensors"), "--dataset", "toy", "--cfg", "0", "2", "--samples-per-class", "3",
          "--limit-real", "60", "--batch-size", "16", "--device", "cpu"])
    record = json.loads((tmp_path / "var_toy.json").read_text())
    m = record["metrics"]
    assert "NOT Inception FID" in m["note"] and record["git_commit"] and record["config"]["sampling"]["seed"] == 0
    assert [e["cfg"] for e in m["sweep"]] == [0.0, 2.0] and sum(e["best"] for e in m["sweep"]) == 1
    best = next(e for e in m["sweep"] if e["best"])
    assert m["best_cfg"] == best["cfg"] and best["fid_cls"] == min(e["fid_cls"] for e in m["sweep"])
    assert m["fid_cls_floor_test_vs_train"] >= 0 and m["real_test_images"] == 60
    for e in m["sweep"]:
        assert 0 <= e["class_agreement"] <= 1 and len(e["class_agreement_per_class"]) == 10
        assert len(e["fid_cls_per_class"]) == 10 and sum(map(sum, e["confusion"])) == 30
    side = json.loads((d / "var.json").read_text())  # the headline numbers also go to the weights' sidecar
    assert side["metrics"]["toy_test_3_per_class_real60"]["best_cfg"] == m["best_cfg"]  # never "toy_test" itself


def test_evaluation_is_seeded(tiny_files):
    _, model, tokenizer, classifier = tiny_files
    test = training_set("toy", "test", 16, 40)
    run = lambda: evaluate_generator(model, tokenizer, classifier, test, cfg_values=[1.0], samples_per_class=2,  # noqa: E731
                                     batch_size=8, seed=3, progress=False)
    a, b = run(), run()
    assert a["sweep"][0]["fid_cls"] == b["sweep"][0]["fid_cls"]
    assert a["sweep"][0]["confusion"] == b["sweep"][0]["confusion"]


def test_a_second_judge_measures_the_same_samples(tiny_files, tmp_path, monkeypatch):
    """`evaluate --classifier A B`: A's figures are those of evaluating with A alone, and B's
    (under "judges") are those of evaluating with B alone: the same samples, two judges."""
    d, *_ = tiny_files
    torch.manual_seed(1)
    other = Classifier(ClassifierConfig(width=4)).eval()  # another draw of the weights
    save_weights(other, d / "judge2.safetensors", "classifier", other.cfg.to_dict())
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    run = lambda name, *judges: main(["evaluate", "--model", "var", "--weights", str(d / "var.safetensors"),  # noqa: E731
                                      "--classifier", *map(str, judges), "--dataset", "toy", "--cfg", "0", "2",
                                      "--samples-per-class", "2", "--limit-real", "40", "--batch-size", "16",
                                      "--device", "cpu", "--results", name])
    run("both", d / "cls.safetensors", d / "judge2.safetensors")
    run("first", d / "cls.safetensors")
    run("second", d / "judge2.safetensors")
    both, first, second = (json.loads((tmp_path / f"{n}.json").read_text())["metrics"]
                           for n in ("both", "first", "second"))
    assert both["judges"].keys() == {"judge2"}
    for key in ("best_cfg", "best_fid_cls", "fid_cls_floor_test_vs_train", "classifier_test_accuracy"):
        assert both[key] == first[key], key
        assert both["judges"]["judge2"][key] == second[key], key
    for e, e1, e2 in zip(both["sweep"], first["sweep"], second["sweep"]):
        assert (e["fid_cls"], e["class_agreement"]) == (e1["fid_cls"], e1["class_agreement"])
        assert e["judges"]["judge2"] == {"fid_cls": e2["fid_cls"], "class_agreement": e2["class_agreement"]}
    assert both["judges"]["judge2"]["best_fid_cls"] != both["best_fid_cls"]  # the two judges do differ


def test_bad_evaluation_arguments(tiny_files, capsys):
    d, model, tokenizer, classifier = tiny_files
    test = training_set("toy", "test", 16, 20)
    with pytest.raises(ValueError, match=r"samples_per_class=0: expected an integer >= 1"):
        evaluate_generator(model, tokenizer, classifier, test, samples_per_class=0)
    with pytest.raises(ValueError, match=r"cfg_values=\[-1.0\]: expected one or more guidance strengths >= 0"):
        evaluate_generator(model, tokenizer, classifier, test, cfg_values=[-1], samples_per_class=1)
    with pytest.raises(ValueError, match=r"batch_size=0: expected an integer >= 1 \(images generated per forward"):
        sample_images(model, tokenizer, torch.tensor([0, 1]), cfg=1.0, batch_size=0)
    for argv, message in ((["--samples-per-class", "0"], "argument --samples-per-class: 0: expected an integer"),
                          (["--batch-size", "0"], "argument --batch-size: 0: expected an integer >= 1"),
                          (["--cfg", "-1"], "argument --cfg: -1: expected a guidance strength >= 0"),
                          (["--model", "gpt"], "argument --model: invalid choice: 'gpt'")):
        with pytest.raises(SystemExit) as e:
            main(["evaluate", "--model", "var", *argv])
        assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--model", "raster", "--weights", str(d / "var.safetensors"), "--classifier",
              str(d / "cls.safetensors"), "--dataset", "toy", "--device", "cpu"])
    assert e.value.code == 2 and "holds a 'var' transformer: expected --model raster" in capsys.readouterr().err


def test_inception_fid_says_what_it_needs():
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torchmetrics torch-fidelity"):
            inception_fid(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    else:
        pytest.skip("torchmetrics is installed: the error path cannot be reached")
