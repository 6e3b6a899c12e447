"""CTC over per-frame phoneme labels, and the phoneme error rate of decoded sequences.

Labels are per frame (B, T) with IGNORE_INDEX on padding; CTC targets are each clip's labels with
repeats merged, shifted by one so that 0 is the blank. The phoneme error rate is the edit distance
between decoded and reference sequences, summed over clips and divided by the total reference
length (as word error rate is)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facebench.data.sequence import IGNORE_INDEX


def phoneme_targets(phonemes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame labels (B, T) -> the concatenated CTC targets (labels + 1) and their lengths."""
    targets, target_lengths = [], []
    for labels, n in zip(phonemes, lengths.tolist()):
        labels = labels[:n]
        labels = labels[labels != IGNORE_INDEX]
        merged = torch.unique_consecutive(labels) + 1
        targets.append(merged)
        target_lengths.append(len(merged))
    return torch.cat(targets), torch.tensor(target_lengths, device=phonemes.device)


def reference_sequences(phonemes: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Per-frame labels (B, T) -> each clip's phoneme sequence, repeats merged (phoneme ids)."""
    targets, target_lengths = phoneme_targets(phonemes, lengths)
    return [t.tolist() for t in torch.split(targets - 1, target_lengths.tolist())]


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, phonemes: torch.Tensor) -> torch.Tensor:
    targets, target_lengths = phoneme_targets(phonemes, lengths)
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
    return F.ctc_loss(
        log_probs, targets, lengths, target_lengths, blank=0, reduction="mean", zero_infinity=True
    )


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, repeats merged, blanks dropped; labels back to phoneme ids."""
    best = logits.argmax(-1)
    decoded = []
    for path, n in zip(best, lengths.tolist()):
        merged = torch.unique_consecutive(path[:n])
        decoded.append([int(x) - 1 for x in merged if x != 0])
    return decoded


def edit_distance(hypothesis: list[int], reference: list[int]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions), one row at a time."""
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i]
        for j, r in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1]


def phoneme_error_rate(hypotheses: list[list[int]], references: list[list[int]]) -> float:
    errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    return errors / max(1, sum(len(r) for r in references))
