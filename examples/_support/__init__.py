"""What the examples share: SQLite plumbing, a flaky network, running on each backend."""
