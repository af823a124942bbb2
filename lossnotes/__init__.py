"""The code behind Loss Notes, an executable book on classification losses.

One module per concept of the book, each tested against PyTorch, SciPy or exact
arithmetic:

- :mod:`lossnotes.info`: surprisal, entropy, cross-entropy and KL divergence of
  distributions (chapters 1 to 3); joint and conditional entropy and mutual
  information of joint tables (chapter 4); differential entropy and KL divergence of
  Gaussians (chapter 6).
- :mod:`lossnotes.stability`: log-sum-exp, softmax, log-softmax, softplus and
  log-sigmoid, stable beside naive, and errors in units in the last place (chapter
  7).
- :mod:`lossnotes.functional`: classification losses written from their formulas,
  with the signatures of ``torch.nn.functional`` (chapters 8 to 12), regression and
  margin losses (chapter 6), and the distillation loss (chapter 14).
- :mod:`lossnotes.ctc`: the CTC loss from its forward-backward recursions, the
  Viterbi alignment and greedy decoding (chapter 13).
- :mod:`lossnotes.calibration`: expected calibration error, reliability curves and
  temperature scaling (chapter 14).
- :mod:`lossnotes.large_vocab`: cross-entropy over large vocabularies, chunked or
  split over processes, with label smoothing, class weights, the z-loss,
  soft-capping and half precision (chapter 15).
- :mod:`lossnotes.plots`: one look for every figure in the book.

Import what you need from its module, e.g. ``from lossnotes.info import entropy``.
"""

__version__ = "0.1.0"
