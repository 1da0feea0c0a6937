"""Token slacks shared by ``summarize``'s plain and thinking modes (a leaf, so the thinking mode
never imports the strategy that uses it)."""

MIN_CONTINUATION_TOKENS = 16
"""A window that stops this close to its checkpoint is summarized rather than continued."""
CLOSE_SLACK_TOKENS = 8
"""Thinking mode: room kept for the closing marker between the thinking and the answer."""
