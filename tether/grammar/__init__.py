"""Front-ends: text and specs -> tokenizer-free trees (pure Python, no numba)."""
