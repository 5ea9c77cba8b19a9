"""Production settings: every secret comes from the environment, cookies are secure."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, env_list, public_base_url

DEBUG = False
BATON_DEMO_API = env.bool("BATON_DEMO_API", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("The environment variable SECRET_KEY must be set.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Connectors reach public addresses only, and what BATON_HTTP_ALLOW lists.
BATON_HTTP_ALLOW_PRIVATE = False

# Production takes its public URL from its environment only, never from an env file a
# `make run` of the same checkout may have left in the data directory.
BATON_BASE_URL = public_base_url(from_run_env=False)
