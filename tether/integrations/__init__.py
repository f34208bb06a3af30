"""Integrations with other libraries: each loads its optional dependency lazily."""
