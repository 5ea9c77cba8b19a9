"""Test settings: a fast password hasher and a fixed throwaway secret."""

import os

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY") or "test-only-insecure-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Connectors may call the test APIs on 127.0.0.1 (the production policy is tested explicitly).
BATON_HTTP_ALLOW_PRIVATE = True
# As in development: a Prometheus on this machine may scrape /metrics without a token.
BATON_METRICS_ALLOW = ["127.0.0.1/32", "::1/128"]
