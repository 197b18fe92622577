"""Hostile input and the content security policy (issue 8)."""
