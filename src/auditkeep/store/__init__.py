"""Storage: the Store contract and its implementations."""
