"""Compiled automata, token masks and their numba kernels."""
