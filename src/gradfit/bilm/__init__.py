"""A character-aware bidirectional language model (ELMo-style biLM) in JAX.

`gradfit.bilm.data` turns a plain-text corpus into word types, their character ids and fixed-length windows
of the token stream; the model and its training live beside it.
"""

__all__ = []
