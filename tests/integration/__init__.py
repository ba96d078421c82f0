"""Integration tests: a real worker, broker and database (see conftest.py)."""
