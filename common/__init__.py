"""The bottom layer: small rules every package shares. It imports nothing of the project."""
