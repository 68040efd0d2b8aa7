"""Batched inference, the one path from a trained model to logits: the training loop's
validation, the ``evaluate`` stage and the predict command all use :func:`predict`. And how
evaluate and predict read the logits out, with the views and through :func:`read_out` that
training chose: each drawing alone or with its shifts (:data:`SHIFTS`), the multi-input model's
characters within the given alphabet (:func:`within_alphabet`), the multi-output model's
alphabet from both of its heads (:func:`alphabet_log_probs`)."""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from omniglot_mtl.core.packed import PackedSplit
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER


def autocast(device: torch.device, precision: str):
    """bf16 autocast, or nothing for fp32 (``auto`` is resolved before: devices.resolve_precision)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r}: resolve it to fp32 or bf16 first")
    return contextlib.nullcontext()


# Test-time views: a drawing and its four one-pixel shifts, their log-probabilities averaged.
# On the recipe's models they scored 0.0-0.6 points more of each task than the drawing alone
# (means of three seeds, on three sets: docs/results.md, "Test-time views"). Training keeps
# them where they score more validation drawings (the checkpoint's ``views``); evaluate and
# predict read a model so.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (down, right) in pixels


def shifted(images: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``images`` (N, 1, S, S) in [0, 1], white paper, moved by at most one pixel each way;
    paper comes in at the edges. Not moved, the same tensor: no copy, the same bytes."""
    if not (down or right):
        return images
    side_y, side_x = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), value=1.0)
    return padded[..., 1 - down : 1 - down + side_y, 1 - right : 1 - right + side_x]


@torch.no_grad()
def predict(
    model: nn.Module, split: PackedSplit, precision: str = "fp32", views: int = 1
) -> dict[str, torch.Tensor]:
    """Logits per task for every row of ``split``, in row order, as float32 on the split's device;
    with ``views`` > 1, the log-probabilities averaged over the first ``views`` of :data:`SHIFTS`.

    ``split.labels`` needs only the fields the model reads besides the image (the multi-input
    model's ``alphabet``). The model is put in eval mode for the call and left as it was.
    """
    if not 1 <= views <= len(SHIFTS):
        raise ValueError(f"views {views}: 1 to {len(SHIFTS)}")
    device = split.images.device
    # On a CPU, batches whose activations stay in cache are faster: on the background set's
    # validation split (2-core EPYC, 2 threads, AVX2 cap) 64 scores 6,500-7,400 images/s, 32 and
    # 128 5,100-6,600, 256 and 512 3,400-3,900. GPUs want big batches.
    batch_size = 64 if device.type == "cpu" else 1024
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {t: [] for t in model.tasks}
    for start in range(0, len(split), batch_size):
        batch = split.batch(torch.arange(start, min(start + batch_size, len(split)), device=device))
        outs = []
        for down, right in SHIFTS[:views]:
            view = batch | {"image": shifted(batch["image"], down, right)}
            with autocast(device, precision):
                out = model(*(view[k] for k in model.inputs))
            outs.append({t: out[t].float() for t in model.tasks})
        for t in model.tasks:
            if views == 1:
                chunks[t].append(outs[0][t])
            else:
                chunks[t].append(torch.stack([o[t].log_softmax(1) for o in outs]).mean(0))
    model.train(was_training)
    return {t: torch.cat(c) for t, c in chunks.items()}


def hits(
    model: nn.Module,
    logits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    char_to_alpha: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per task, whether each row's top answer in ``logits`` is its label. Given ``char_to_alpha``,
    the multi-input model's answer is read through :func:`read_out`, as evaluate and predict read
    it (within the drawing's given alphabet), so that validation scores what the test scores. (The
    multi-output model's tasks need no read-out; its alphabet from both heads is chosen later.)"""
    if char_to_alpha is not None and ALPHABET in model.inputs:
        logits = read_out(model, logits, char_to_alpha, alphabet=labels[ALPHABET])
    return {t: logits[t].argmax(1) == labels[t] for t in model.tasks}


def accuracy(
    model: nn.Module,
    split: PackedSplit,
    precision: str = "fp32",
    world=None,
    char_to_alpha: torch.Tensor | None = None,
) -> dict[str, float]:
    """Top-1 accuracy per task of ``model`` on ``split``, read as :func:`hits` reads it.

    With a ``world`` of several processes (:class:`~omniglot_mtl.training.distributed.World`), each scores
    its share of the rows and the counts are summed, so all processes get the same figures.
    """
    share = split
    if world is not None and world.size > 1:
        rows = world.share(torch.arange(len(split), device=split.images.device))
        share = PackedSplit(split.images[rows], {k: v[rows] for k, v in split.labels.items()})
    right = hits(model, predict(model, share, precision), share.labels, char_to_alpha)
    correct = torch.stack([right[t].sum() for t in model.tasks]).float()
    if world is not None:
        correct = world.sum(correct)
    return dict(zip(model.tasks, (correct / len(split)).tolist(), strict=True))


# How the multi-output model's alphabet is read from its two heads. The character head implies
# an alphabet too: the sum of its probabilities over each alphabet's characters.
#   head:       the alphabet head alone
#   characters: the character head's probabilities summed per alphabet
#   product:    the two multiplied (their log-probabilities added), renormalised
READ_OUTS = ("head", "characters", "product")
# The name of the chosen read-out's results, beside the head's ``alphabet`` (metrics, per-image
# files, predict's output).
BOTH_HEADS = "alphabet_both_heads"


def character_alphabet(alphabets: dict[str, int], characters: dict[str, int]) -> torch.Tensor:
    """For each character index, the index of its alphabet (names are ``<Alphabet>/<char>``)."""
    table = torch.empty(len(characters), dtype=torch.long)
    for name, i in characters.items():
        table[i] = alphabets[name.split("/", 1)[0]]
    return table


def within_alphabet(
    logits: torch.Tensor, alphabet: torch.Tensor, char_to_alpha: torch.Tensor
) -> torch.Tensor:
    """The multi-input model's character logits with each character outside the image's given
    alphabet at -inf: the model is told the alphabet, so its answer lies in it. Evaluate and
    predict read it out so; its top-1 accuracy can only gain, the true character being inside."""
    outside = char_to_alpha.to(logits.device)[None, :] != alphabet[:, None]
    return logits.masked_fill(outside, float("-inf"))


def alphabet_log_probs(
    logits: dict[str, torch.Tensor], char_to_alpha: torch.Tensor, read_out: str
) -> torch.Tensor:
    """(N, alphabets) log-probabilities of each image's alphabet, read out as ``read_out``."""
    head = logits[ALPHABET].log_softmax(1)
    if read_out == "head":
        return head
    summed = torch.zeros_like(head).index_add_(1, char_to_alpha.to(head.device), logits[CHARACTER].softmax(1))
    # A probability that rounds to 0 in float32 must not make a log of -inf, or 0 * inf a NaN.
    from_characters = summed.clamp_min(torch.finfo(summed.dtype).tiny).log()
    if read_out == "characters":
        return from_characters
    if read_out == "product":
        return (head + from_characters).log_softmax(1)
    raise ValueError(f"read_out {read_out!r}: one of {READ_OUTS}")


def read_out(
    model: nn.Module,
    logits: dict[str, torch.Tensor],
    char_to_alpha: torch.Tensor,
    alphabet_read_out: str | None = None,
    alphabet: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``logits`` as evaluate and predict read them out: the multi-input model's characters
    within each image's given ``alphabet``; after the multi-output model's tasks,
    :data:`BOTH_HEADS`, the log-probabilities of the alphabet read from both heads as
    ``alphabet_read_out`` (the one training chose on validation) says."""
    out = dict(logits)
    if ALPHABET in model.inputs:
        out[CHARACTER] = within_alphabet(logits[CHARACTER], alphabet, char_to_alpha)
    if ALPHABET in model.tasks:
        out[BOTH_HEADS] = alphabet_log_probs(logits, char_to_alpha, alphabet_read_out)
    return out


def choose_read_out(
    logits: dict[str, torch.Tensor], alphabet: torch.Tensor, char_to_alpha: torch.Tensor
) -> tuple[str, dict[str, float]]:
    """The read-out of :data:`READ_OUTS` that gets most alphabets right in ``logits`` (the
    validation split's: the test split must not choose), the head's on a tie; and each one's
    accuracy."""
    accuracy = {
        r: round(
            (alphabet_log_probs(logits, char_to_alpha, r).argmax(1) == alphabet).float().mean().item(), 6
        )
        for r in READ_OUTS
    }
    return max(READ_OUTS, key=accuracy.__getitem__), accuracy  # max keeps the first of equals
