"""The ground floor of the learning loop: what every floor above may read and none below needs.

- ``records``: behaviour records and their ``Manifest`` (which reasoner, templates, settings)
- ``outcomes``: collected samples as ``Outcome``s, so aggregators replay over them
- ``datasets``: labelled questions (GSM8K, MATH-500, any JSONL)
- ``stats``: intervals, paired tests, AUROC, ECE
- ``artifact``: the base of every learned artifact (save/load, format version, reasoner check)

It imports only ``ponder.protocol``, ``ponder.errors`` and leaf modules.
"""
