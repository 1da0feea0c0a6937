"""Tools for tool-using strategies. Importing this package registers the built-in ones:
``calculator`` (safe arithmetic) and ``search_problems`` (BM25 over solved GSM8K-train problems).
"""

from ponder.tools.base import Tool, get_tool, resolve_tools, tool, tool_names
from ponder.tools.calculator import calculator, evaluate
from ponder.tools.docsearch import DocumentIndex, search_problems

__all__ = [
    "DocumentIndex",
    "Tool",
    "calculator",
    "evaluate",
    "get_tool",
    "resolve_tools",
    "search_problems",
    "tool",
    "tool_names",
]
