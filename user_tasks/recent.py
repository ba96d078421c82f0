"""
``Recent``: a bounded map for per-process memory of recent task ids.

Layer: leaf.  Imports nothing from user_tasks.
"""
from collections import OrderedDict


class Recent(OrderedDict):
    """A map that forgets its oldest entries once it holds ``limit`` items."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)
