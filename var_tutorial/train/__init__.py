"""Training loops, checkpoints and resuming.

Three loops, one module each, built from the same few pieces (loop.py):

    train_tokenizer     images -> tokenizer             loss = ||decode(f_hat) - x||^2 + vq_loss   tokenizer.py
    train_transformer   cached tokens -> VAR or raster  loss = cross entropy of every token        transformer.py
                        (fine-tuning VAR on its own draws: self_forced_loss, the same file)
    train_classifier    images -> evaluation classifier loss = label-smoothed cross entropy         classifier.py

The shared pieces, each defined once in loop.py, are things a student can check:
- The whole training set sits on the device (CIFAR-10: 150 MB of uint8 images, or 26 MB
  of int16 tokens), and batches are drawn by index: no DataLoader workers to wait for.
- Every random choice (the epoch permutation, flips, crops, class dropout, restarts)
  comes from a generator seeded by (seed, step), so resuming from a checkpoint
  continues exactly the run that was interrupted (batch_indices, Steps).
- ``minutes=`` turns a time budget into a step count after timing the first steps, and
  stores that count in the checkpoint, so a resumed run keeps the same schedule (Steps).
- lr_at: linear warm-up, then cosine decay. param_groups: weight decay on the weights of
  linear and convolutional layers only, none on biases, norms and embeddings.
- On a GPU: bf16 autocast and torch.compile; on the CPU: float32, no compile.

The transformers learn from a *token cache* (token_cache, in transformer.py): the training
set encoded once by the tokenizer, every image and its mirror image, as int16 token
sequences (N, L), saved in data/cache/ under the tokenizer file's sha256.

Everything is importable from here: ``from var_tutorial.train import train_transformer``; the configs
the loops take live in config.py.
"""
from .classifier import train_classifier
from .loop import (
    Steps,
    batch_at,
    batch_indices,
    compiled,
    load_checkpoint,
    lr_at,
    param_groups,
    pick_device,
    save_checkpoint,
    set_lr,
    setup_device,
    training_set,
)
from .tokenizer import train_tokenizer
from .transformer import (
    empty_window,
    encode_tokens,
    exposure_gap,
    hold_out,
    own_context,
    own_draws,
    per_scale_stats,
    self_forced_loss,
    summed_window,
    token_cache,
    token_loss,
    train_transformer,
    validate,
)

__all__ = [
    # loop.py: the shared pieces
    "Steps", "batch_at", "batch_indices", "compiled", "load_checkpoint", "lr_at", "param_groups", "pick_device",
    "save_checkpoint", "set_lr", "setup_device", "training_set",
    # the three loops
    "train_tokenizer",
    "encode_tokens", "token_cache", "hold_out", "token_loss", "per_scale_stats", "empty_window", "summed_window", "validate",
    "own_draws", "own_context", "self_forced_loss", "exposure_gap",
    "train_transformer",
    "train_classifier",
]
