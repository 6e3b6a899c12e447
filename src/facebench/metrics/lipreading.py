"""Lip readability: the phoneme error rate of a frozen reference lip reader on predicted motion.

The reader is the dataset's (facebench.lipreading.reference), never the model under test. The same
reader on the ground truth gives the floor, reported beside it as `per_gt`. Both are corpus-level
rates: edit distances summed over clips over the summed reference length, as word error rate is.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from facebench.lipreading.ctc import edit_distance, reference_sequences
from facebench.lipreading.reference import ReferenceLipReader
from facebench.metrics.mesh import MetricInputError, _lengths, align_pair


class LipReadability(Metric):
    """`per` of the predictions and `per_gt` of the ground truth, each read whole and compared with
    the phonemes of the whole clip (a prediction shorter than the clip is read as it is: what it
    leaves out counts as deletions), so `per_gt` is the same for every model."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, reader: ReferenceLipReader, **kwargs):
        super().__init__(**kwargs)
        self.reader = reader.eval().requires_grad_(False)
        self.add_state("errors", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("gt_errors", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("reference_length", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, pred, target, templates=None, phonemes=None, pred_lengths=None, target_lengths=None
    ) -> None:
        """`pred`, `target`: (B, T, V, 3); `templates`: (B, V, 3); `phonemes`: (B, T) per-frame labels."""
        if templates is None or phonemes is None:
            raise MetricInputError(
                "lip readability needs the templates and the per-frame phoneme labels of the clips"
            )
        align_pair(pred, target, pred_lengths, target_lengths)  # shapes and values checked
        n_pred, n_target = _lengths(pred, pred_lengths), _lengths(target, target_lengths)
        if phonemes.shape[0] != target.shape[0] or phonemes.shape[1] < target.shape[1]:
            raise MetricInputError(
                f"expected phoneme labels of shape ({target.shape[0]}, >= {target.shape[1]}), found {tuple(phonemes.shape)}"
            )
        references = reference_sequences(phonemes, n_target)
        for state, vertices, n in (("errors", pred, n_pred), ("gt_errors", target, n_target)):
            hypotheses = self.reader.read(vertices, templates, n)
            setattr(
                self,
                state,
                getattr(self, state) + sum(edit_distance(h, r) for h, r in zip(hypotheses, references)),
            )
        self.reference_length += sum(len(r) for r in references)

    def compute(self) -> dict[str, torch.Tensor]:
        length = self.reference_length.clamp(min=1).double()
        return {"per": self.errors / length, "per_gt": self.gt_errors / length}
