"""Shared helpers for the tests (test modules import these, never each other)."""
