"""Phoneme error rate: the edit distance between decoded and reference phoneme sequences, summed
over clips and divided by the total reference length (as word error rate is)."""

from __future__ import annotations


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
