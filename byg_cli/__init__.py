"""byg: Bootstrap Your Generator — unpaired instruction-based editing for flow-matching models."""

__version__ = "0.1.0"
