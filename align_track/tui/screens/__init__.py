"""Modal screens: help and confirmations."""
