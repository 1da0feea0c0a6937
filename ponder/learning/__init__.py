"""The learning loop, offline: learn from what the reasoner did on labelled questions.

Nothing online imports this package; it imports everything below it. One sub-package per recipe::

    collect/   record behaviour (``ponder collect``): the ``collect`` strategy, its resumable
               driver
    drr/       train the DRR judge (DM) and evaluate every stop policy by replay
    learned/   train the learned aggregator
    ssa/       SSA aggregator training: data, RFT, SFT, GRPO, export to GGUF

All of them read one behaviour format (``ponder.behaviour.records``) and write artifacts that
carry its manifest (``ponder.behaviour.artifact``), so the online judges refuse a reasoner they do
not describe. Importing this package registers the ``collect`` strategy (the CLI imports it).
"""

from ponder.learning.collect.strategy import BehaviourCollector

__all__ = ["BehaviourCollector"]
