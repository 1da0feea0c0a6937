"""DRR: a judge (DM) learned from the reasoner's own behaviour, and the stop policies it drives.

Use it in three steps (``ponder drr collect | train | evaluate``; docs/stopping.md)::

    collection = read_collection(DIR)                  # ponder.learning: behaviour data
    dm = train_dm(*collection); dm.save(FILE)          # ponder.learning.drr.train (scikit-learn)
    evaluate(dm, *read_collection(TEST), OUT)          # replay of every stop policy + baselines

At inference ``DM.load(FILE)`` needs no scikit-learn; the strategies ``drr_think``,
``drr_sample`` and ``drr_feedback`` (``ponder.strategies.drr``) take ``dm: FILE``.
Here: ``features`` (state -> features, in families), ``model`` (the artifact, on
``ponder.behaviour.artifact``) and ``bayes`` (the judge-weighted Beta stop of ``drr_bayes``).
Offline, in ``ponder.learning.drr``: ``states`` (records -> checkpoint states), ``train``,
``replay`` (policies over a collection), ``evaluate``; its statistics (AUROC, ECE, Wilson,
McNemar) are ``ponder.behaviour.stats``.
"""

from ponder.stopping.features import CheckpointState
from ponder.stopping.model import DM, load_dm

__all__ = ["DM", "CheckpointState", "load_dm"]
