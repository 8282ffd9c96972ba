"""Queries over the results database shared by the results API and the CLI.

Every function takes keyword-only arguments and a SQLAlchemy ``Session`` that the
caller owns; only ``decisions.commit_decision`` opens its own transactions, because
it retries them.
"""
