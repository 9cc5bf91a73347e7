"""Data: readers, vocabularies and dataset sources (the synthetic tasks generate their own)."""
