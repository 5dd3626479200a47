"""Research assets: the ``sweep`` family (one dynamic partition per declared sweep)."""
