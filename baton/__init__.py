"""Baton's tools for teams that use it: `baton.testing`, process tests in pytest."""
