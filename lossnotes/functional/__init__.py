r"""Classification losses, mirroring ``torch.nn.functional`` (PyTorch 2.13).

Each function is written from its formula with plain tensor operations, never by
calling the PyTorch function it mirrors, and is tested against that function in
value and gradient.
"""

from lossnotes.functional._common import BCE_GRAD_EPS, BCE_LOG_CLAMP
from lossnotes.functional.binary import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
)
from lossnotes.functional.classification import cross_entropy, nll_loss
from lossnotes.functional.distillation import distillation_loss
from lossnotes.functional.divergence import (
    KL_MEAN_WARNING,
    KL_REDUCTIONS,
    kl_div,
    label_smoothing_kl_loss,
)
from lossnotes.functional.focal import focal_loss, sigmoid_focal_loss
from lossnotes.functional.margin import (
    hinge_embedding_loss,
    hinge_loss,
    multi_margin_loss,
    soft_margin_loss,
)
from lossnotes.functional.regression import (
    gaussian_nll_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)

__all__ = [
    "BCE_GRAD_EPS",
    "BCE_LOG_CLAMP",
    "KL_MEAN_WARNING",
    "KL_REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "distillation_loss",
    "focal_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "label_smoothing_kl_loss",
    "mse_loss",
    "multi_margin_loss",
    "nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
]
