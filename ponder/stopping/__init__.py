"""DRR: a judge (DM) learned from the reasoner's own behaviour, and the stop policies it drives.

Use it in three steps (``ponder drr collect | train | evaluate``; docs/stopping.md)::

    collection = read_collection(DIR)                  # ponder.learning: behaviour data
    dm = train_dm(*collection); dm.save(FILE)          # ponder.learning.drr.train (scikit-learn)
    evaluate(dm, *read_collection(TEST), OUT)          # replay of every stop policy + baselines

At inference ``DM.load(FILE)`` needs no scikit-learn; the strategies ``drr_think``,
``drr_sample`` and ``drr_feedback`` (``ponder.strategies.drr``) take ``dm: FILE``.
Modules: ``features`` (state -> features), ``states`` (records -> checkpoint states),
``model`` (the artifact), ``train``, ``replay`` (policies over a collection), ``evaluate``,
``metrics`` (AUROC, ECE, Wilson, McNemar).
"""

from ponder.stopping.features import CheckpointState
from ponder.stopping.model import DM, load_dm

__all__ = ["DM", "CheckpointState", "load_dm"]
