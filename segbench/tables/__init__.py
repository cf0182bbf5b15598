"""Assemble run results into the papers' tables (reproduced vs paper, delta, seeds, directions)."""

from segbench.tables.assemble import assemble_table, write_table

__all__ = ["assemble_table", "write_table"]
