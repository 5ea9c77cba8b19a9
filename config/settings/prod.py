"""Production settings: every secret comes from the environment, cookies are secure."""
from .base import *  # noqa: F403
from .base import env_bool, env_list, require_env

DEBUG = False
BATON_DEMO_API = env_bool("BATON_DEMO_API", False)
SECRET_KEY = require_env("SECRET_KEY")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Connectors reach public addresses only, and what BATON_HTTP_ALLOW lists.
BATON_HTTP_ALLOW_PRIVATE = False
