"""Training of the learned aggregator (``train``); its inference is ``ponder.aggregator.learned``."""
