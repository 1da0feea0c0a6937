"""Behaviour collection: the ``collect`` strategy (``strategy``) and the resumable driver that runs
it over a labelled dataset and appends one graded record per question (``collector``)."""
