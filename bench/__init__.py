"""Benchmarks: each script prints one JSON object and compares Baton with plain SpiffWorkflow."""
