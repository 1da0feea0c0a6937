"""Past one machine: the resumable batch drivers (``ponder eval``, ``ponder collect``,
``ponder ssa rft``) on a Ray cluster, or split into shards for array jobs.

- ``ray_pool``: ``RayPlacement`` runs a driver's items as a Ray Dataset through an actor pool
  (``map_batches``), each actor with its own Session and backends (``--ray [ADDRESS]``); this
  process stays the only writer. Needs the ``ponder[ray]`` extra, imported only when used.
- ``shard``: ``--shard i/n``, a deterministic split by item id; ``merge``: ``ponder merge``, which
  puts shards back together and refuses shards made with other settings.

See docs/scale.md.
"""
