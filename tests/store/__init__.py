"""Store tests: the contract suite over SQLite and PostgreSQL, and the PostgreSQL harness."""
