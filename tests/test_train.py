"""Training: the loss goes down, checkpoints hold their config, resuming is exact."""
import pytest
import torch

from var_tutorial.config import TokenizerTrainConfig, tokenizer_preset
from var_tutorial.data import toy_dataset
from var_tutorial.train import batch_at, lr_at, train_tokenizer


def tiny_run(out, steps=24, **kw):
    tcfg = TokenizerTrainConfig(dataset="toy", steps=steps, batch_size=16, lr=2e-3, warmup_steps=4,
                                restart_every=8, ckpt_every=8, log_every=4, subset=64)
    images = toy_dataset(n=64, image_size=16)[0]
    return train_tokenizer(tokenizer_preset("tiny"), tcfg, out, device="cpu", compile=False,
                           progress=False, images_u8=images, **kw)


def test_loss_decreases_and_codes_restart(tmp_path):
    model, history = tiny_run(tmp_path / "a", steps=40)
    assert history[-1]["recon_mse"] < 0.7 * history[0]["recon_mse"]
    assert any(h.get("codes_restarted", 0) > 0 for h in history)
    ck = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)
    assert ck["config"] == tokenizer_preset("tiny").to_dict() and ck["step"] == 40


def test_resume_continues_exactly(tmp_path):
    _, straight = tiny_run(tmp_path / "straight")
    tiny_run(tmp_path / "split", stop_after=11)  # interrupted after 11 steps (last checkpoint: 11)
    model, resumed = tiny_run(tmp_path / "split")
    key = lambda hist: [(h["step"], h["loss"], h.get("codes_restarted")) for h in hist]  # noqa: E731
    assert key(resumed) == key(straight)


def test_resume_refuses_another_config(tmp_path):
    tiny_run(tmp_path / "r", steps=4)
    tcfg = TokenizerTrainConfig(dataset="toy", steps=8, batch_size=16, subset=64)
    with pytest.raises(ValueError, match=r"checkpoint .*ckpt.pt was trained with config"):
        train_tokenizer(tokenizer_preset("tiny", vocab_size=32), tcfg, tmp_path / "r", device="cpu",
                        compile=False, progress=False, images_u8=toy_dataset(n=64, image_size=16)[0])


def test_batches_are_seeded_and_cover_an_epoch():
    images = torch.arange(32, dtype=torch.uint8).view(32, 1, 1, 1).expand(32, 3, 2, 2).contiguous()
    a = torch.cat([batch_at(images, s, 8, seed=0) for s in range(4)])
    b = torch.cat([batch_at(images, s, 8, seed=0) for s in range(4)])
    assert torch.equal(a, b)
    values = ((a[:, 0, 0, 0] + 1) * 127.5).round().long().sort().values
    assert torch.equal(values, torch.arange(32))  # one epoch = every image once


def test_lr_schedule():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3) and all(b <= a for a, b in zip(lrs[9:], lrs[10:]))


class Payload:
    """Unpickling this would create a file: proof that pickled code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    from var_tutorial.train import load_checkpoint

    marker = tmp_path / "payload_ran"
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"step": 1, "evil": Payload(str(marker))}, ckpt)
    with pytest.raises(ValueError, match=r"checkpoint .*ckpt.pt cannot be read safely.*pickled code"):
        load_checkpoint(ckpt, "cpu")
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    from var_tutorial.train import load_checkpoint

    tiny_run(tmp_path / "t", steps=4)
    ckpt = tmp_path / "t" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"checkpoint .*ckpt.pt cannot be read safely.*truncated"):
        load_checkpoint(ckpt, "cpu")
