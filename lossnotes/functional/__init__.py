r"""Classification losses, mirroring ``torch.nn.functional`` (PyTorch 2.13).

Each function is written from its formula with plain tensor operations, never by calling the
PyTorch function it mirrors, and is tested against that function in value and gradient.
"""

from lossnotes.functional._common import BCE_GRAD_EPS, BCE_LOG_CLAMP
from lossnotes.functional.binary import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
)
from lossnotes.functional.classification import cross_entropy, nll_loss
from lossnotes.functional.divergence import (
    KL_MEAN_WARNING,
    KL_REDUCTIONS,
    kl_div,
    label_smoothing_kl_loss,
)
from lossnotes.functional.focal import focal_loss, sigmoid_focal_loss

__all__ = [
    "BCE_GRAD_EPS",
    "BCE_LOG_CLAMP",
    "KL_MEAN_WARNING",
    "KL_REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "focal_loss",
    "kl_div",
    "label_smoothing_kl_loss",
    "nll_loss",
    "sigmoid_focal_loss",
]
