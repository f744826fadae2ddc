"""A study's data: reading a file, typing its columns, splitting and preprocessing it."""
