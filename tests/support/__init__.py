"""Helpers and fixtures shared by several test modules (no tests here): test modules import from
this package or get fixtures from ``tests/conftest.py``, never from one another."""
