"""lossnotes: the code behind Loss Notes, an executable book on classification losses.

One module per concept of the book:

- :mod:`lossnotes.info`: surprisal, entropy, cross-entropy and KL divergence of distributions.
- :mod:`lossnotes.plots`: one look for every figure in the book.
"""

__version__ = "0.1.0"
