"""Development settings (`make run`, manage.py): a throwaway secret unless one is given.

DEBUG is off unless the environment turns it on (DEBUG=1). Its error pages show the settings
and the request environment (DATABASE_URL, the broker URL) to whoever made the request, and
the development server binds 127.0.0.1, so "only for requests from this machine" would still
mean every signed-in user of a `make run` Baton. Errors are logged with their traceback to the
terminal instead. `make run` serves with gunicorn at production speed (config/launch.py), static
files through WhiteNoise; with BATON_RELOAD=1 with the auto-reloading runserver.
"""

import os

from .base import *  # noqa: F403
from .base import env, env_list

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-insecure-key-do-not-use-in-production"
# Connectors may call loopback and private addresses (the demo API, services on this machine).
BATON_HTTP_ALLOW_PRIVATE = env.bool("BATON_HTTP_ALLOW_PRIVATE", default=True)
# A Prometheus on this machine may scrape /metrics without a token.
BATON_METRICS_ALLOW = env_list("BATON_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
