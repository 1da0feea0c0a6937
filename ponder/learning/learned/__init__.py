"""Training of the learned aggregator (``train``); inference is ``ponder.aggregator.learned``."""
