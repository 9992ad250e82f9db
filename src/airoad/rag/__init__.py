"""Retrieval-augmented generation: an evaluation corpus and question set over the Python
language reference and airoad's own lessons, retrievers, and the labs built on them."""
