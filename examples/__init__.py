"""Worked examples of segbench plugins (see docs/adding_a_method.md)."""
