"""Training-data generation with Claude through the Message Batches API.

plan (cells, personas, prompts) → batches (SDK calls) → parsing and validation → state
(SQLite in the run directory, resumable) → report and output table. `runner` ties them
together; `depdetect train generate` is the command line.
"""
