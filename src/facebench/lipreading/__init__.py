"""Lip reading: CTC helpers shared by models with a reading task (DualTalker) and the frozen
reference reader that scores every model's lip readability."""

from facebench.lipreading.ctc import (
    ctc_loss,
    edit_distance,
    greedy_decode,
    phoneme_error_rate,
    phoneme_targets,
)

__all__ = ["ctc_loss", "edit_distance", "greedy_decode", "phoneme_error_rate", "phoneme_targets"]
