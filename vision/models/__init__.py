"""Vision architectures, one family a file."""
