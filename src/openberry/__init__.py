"""openberry: o1-style mathematical reasoning with tree search, reward models and self-play RL.

The public API is re-exported here. This module must stay light: importing it must not import
torch, transformers or any other heavy dependency (the CLI's fast start depends on it).
"""

from openberry.errors import BerryError
from openberry.records import Example, Generation, Problem, RecordError
from openberry.tree import Node, Tree, TreeFormatError

__version__ = "0.1.0"

__all__ = [
    "BerryError",
    "Example",
    "Generation",
    "Node",
    "Problem",
    "RecordError",
    "Tree",
    "TreeFormatError",
    "__version__",
]
