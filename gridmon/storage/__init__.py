"""Repositories: the SQL that reads and writes gridmon's tables."""
