"""Thin API views: parse the request, call one service or selector, render the result."""
