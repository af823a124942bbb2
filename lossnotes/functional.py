r"""Classification losses, mirroring ``torch.nn.functional`` (PyTorch 2.13).

Each function is written from its formula with plain tensor operations, never by calling the
PyTorch function it mirrors, and is tested against that function in value and gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import check_reduction
from lossnotes.stability import log_softmax

# === Chapters 6-7: nll_loss, cross_entropy, binary_cross_entropy, ... (PyTorch APIs I) ========


# === Chapters 8-10: kl_div, label_smoothing_kl_loss, focal losses (PyTorch APIs II) ===========
