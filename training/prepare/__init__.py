"""Prepare: read labelled tables, clean, detect language, dedup, balance, split, audit."""
