"""LangGraph adapters: a long-term memory store and a checkpointer kept in ctxmesh.

* :class:`CtxmeshStore` is a LangGraph ``BaseStore``: namespaced items,
  filters, search through ctxmesh's search, TTLs, sync and async batches.
* :class:`CtxmeshSaver` is a LangGraph ``BaseCheckpointSaver``: graphs
  persist their state in a ctxmesh context, resume after a restart, and
  travel back to any earlier checkpoint.

Both need the ``langgraph`` extra: ``pip install 'ctxmesh[langgraph]'``.
The key layout of each is described in its module and in this package's
README.
"""

from .checkpoint import CtxmeshSaver
from .store import CtxmeshStore

__all__ = ["CtxmeshSaver", "CtxmeshStore"]
