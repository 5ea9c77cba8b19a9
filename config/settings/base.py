"""Settings shared by every environment; everything that differs comes from the environment."""

import os
import re
import warnings
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import environ

from config.queues import events_queue, job_queue
from config.static_headers import add_static_headers

BASE_DIR = Path(__file__).resolve().parent.parent.parent


# Typed values (booleans, numbers, lists) from the environment: django-environ. Free text
# (secrets, URLs, paths) is read from os.environ as it is: django-environ would take a value
# that starts with `$` for the name of another variable, and a secret key may start with `$`.
env = environ.Env()


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blank items (`a,,b`, a trailing comma) are dropped."""
    return [item for item in env.list(name, cast=str.strip, default=default) if item]


DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "csp",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "processes",
    "engine",
    "tasks_ui",
    "api",
    # Process tests: the management commands test_processes and load_test_coverage.
    "baton",
]

MIDDLEWARE = [
    # First: it times the whole request and starts its log context empty.
    "config.observability.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from gunicorn itself (WhiteNoise), before sessions and the rest: `make run`
    # and a deployment serve them the same way, with no web server in front required.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Refuses request bodies over their cap before anything below can read them.
    "config.request_limits.RequestBodyLimitMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Every HTML page gets a strict Content-Security-Policy (django-csp): scripts, styles, images
# and fonts only from Baton itself, no inline script, no plugins, not framed. What users wrote
# is escaped too, so this is the second line. Diagram XML is served under its own sandbox
# policy as a download (processes/content_policies.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# WhiteNoise answers static files before django-csp runs: they get the same policy here.
WHITENOISE_ADD_HEADERS_FUNCTION = add_static_headers

# Login throttling (django-axes): after this many failed logins for one user name from one
# address, or for any user names from one address (password spraying), further attempts from
# there are refused for the cool-off time (minutes). Another address is not locked out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "engine.auth_backend.ModelBackendWithGroups",
]
AXES_FAILURE_LIMIT = env.int("BATON_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = env.float("BATON_LOGIN_COOLOFF_MINUTES", default=15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind reverse proxies, how many (BATON_TRUSTED_PROXY_COUNT): the client's address is then
# read from X-Forwarded-For (django-ipware), or every client would share the proxy's address.
# Without proxies only the connection's own address counts: a header could be forged.
if env.int("BATON_TRUSTED_PROXY_COUNT", default=0):
    AXES_IPWARE_PROXY_COUNT = env.int("BATON_TRUSTED_PROXY_COUNT")
    AXES_IPWARE_PROXY_ORDER = "right-most"
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tasks_ui.context_processors.inbox_header",
            ],
        },
    },
]

# Where `make run` keeps its embedded Postgres and Redis. When they are running and the
# environment names no servers, manage.py commands in another terminal use them too.
EMBEDDED_DATA_DIR = Path(os.environ.get("BATON_DATA_DIR") or BASE_DIR / ".data")


def embedded_database_url() -> str | None:
    pgdata = EMBEDDED_DATA_DIR / "postgres"
    if (pgdata / "postmaster.pid").exists():
        return f"postgres://postgres@{quote(str(pgdata), safe='')}/baton"
    return None


def embedded_broker_url() -> str | None:
    socket = EMBEDDED_DATA_DIR / "redis.socket"
    return f"redis+socket://{socket}" if socket.exists() else None


DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL")
        or embedded_database_url()
        or "postgres://postgres@127.0.0.1:5432/baton",
        conn_max_age=env.int("DB_CONN_MAX_AGE", default=60),
        # A kept connection is checked before each request reuses it: after a database
        # restart the request gets a fresh one, not an error.
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/tasks/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Dates and times as 2024-05-31 14:03:22 (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Front-end packages from npm (package.json), served as Baton's own static files.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/bpmn-js", BASE_DIR / "node_modules" / "bpmn-js" / "dist"),
    # The modeler bundle built from frontend/ by `make setup` (npm run build).
    ("bundles", BASE_DIR / "frontend" / "dist"),
]
# WhiteNoise serves what the finders above find (indexed once per process start), so no
# `collectstatic` is needed; files collected into STATIC_ROOT are served too.
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` there is no STATIC_ROOT, which is fine here (the finders serve), so
# WhiteNoise's warning about it at every process start says nothing.
warnings.filterwarnings("ignore", message=f"No directory at: {re.escape(str(STATIC_ROOT))}")

# Celery: the broker comes from the environment; results are written to Postgres by
# the engine itself, so no result backend is needed.
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL") or embedded_broker_url() or "redis://127.0.0.1:6379/0"
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# One job queue per deployment (BATON_CELERY_QUEUE); the tests use their own so that a
# running dev worker never takes their messages.
CELERY_TASK_DEFAULT_QUEUE = job_queue(os.environ)
# Timer ticks, the sweep and event deliveries have a queue (and a worker) of their own, so
# that they never wait behind service jobs (config/queues.py).
BATON_EVENTS_QUEUE = events_queue(os.environ)
CELERY_TASK_ROUTES = {
    name: {"queue": BATON_EVENTS_QUEUE}
    for name in (
        "baton.fire_due_timers",
        "baton.sweep_service_jobs",
        "baton.deliver_events",
        "baton.sweep_batches",
        "baton.deliver_webhooks",
        "baton.delete_expired_records",
    )
}
# When the broker is down, a send gives up after about a second (the work waits in the
# database for the sweep) instead of holding the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Keep worker database connections across tasks (Celery closes them after every task
# otherwise); config/celery.py still drops broken or expired ones before each task.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SOFT_TIME_LIMIT = env.int("BATON_JOB_TIME_LIMIT_SECONDS", default=300)

# Service jobs: default retry budget, backoff, and the sweep that re-enqueues lost jobs.
BATON_JOB_DEFAULT_ATTEMPTS = env.int("BATON_JOB_DEFAULT_ATTEMPTS", default=3)
# A worker that finished a job runs the instance's next job itself (no trip through the broker)
# for this long after its message came; then it hands the next one over (services.job_runs).
BATON_JOB_CONTINUE_SECONDS = env.float("BATON_JOB_CONTINUE_SECONDS", default=5)
BATON_RETRY_BASE_SECONDS = env.float("BATON_RETRY_BASE_SECONDS", default=1.0)
BATON_RETRY_MAX_SECONDS = env.float("BATON_RETRY_MAX_SECONDS", default=300)
# The sweep runs this often: a running job whose worker died (its run lock is free) is taken
# over at the next sweep; so is a job whose hand-over to the broker failed, and a pending job
# whose message is gone (the job queue is empty), once it is 2 s late.
BATON_SWEEP_INTERVAL_SECONDS = env.float("BATON_SWEEP_INTERVAL_SECONDS", default=5)
# A pending job this late is handed over again even while messages wait in the job queue
# (its own may be among them, behind a backlog).
BATON_SWEEP_GRACE_SECONDS = env.float("BATON_SWEEP_GRACE_SECONDS", default=30)
# Where the limits of connections (rate limits, concurrency slots, circuit breakers) keep
# the state every worker shares: a Redis URL; by default the broker's when it is Redis.
BATON_LIMITS_REDIS_URL = os.environ.get("BATON_LIMITS_REDIS_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "redis://127.0.0.1:6379/0"
)
# With another broker (RabbitMQ) and no BATON_LIMITS_REDIS_URL, the URL above is a guess:
# every process that uses the limits says so once in its log (engine/connectors/limits.py).
BATON_LIMITS_REDIS_URL_GUESSED = not os.environ.get(
    "BATON_LIMITS_REDIS_URL"
) and not CELERY_BROKER_URL.startswith("redis")
# How long a worker keeps the settings of connections before reading them again.
BATON_CONNECTIONS_CACHE_SECONDS = env.float("BATON_CONNECTIONS_CACHE_SECONDS", default=5)
# Diagram scripts run in sandbox processes: CPU seconds per evaluation (a process may
# lower or raise it with its `scriptTimeLimit` property, up to 60 s) and memory per sandbox.
BATON_SCRIPT_TIME_LIMIT_SECONDS = env.float("BATON_SCRIPT_TIME_LIMIT_SECONDS", default=2)
BATON_SCRIPT_MEMORY_LIMIT_MB = env.int("BATON_SCRIPT_MEMORY_LIMIT_MB", default=512)
# The declared secret store for connector parameters (`secret:NAME` in literal diagram
# text): this mapping, plus the JSON file or directory (one file per secret, named after it)
# that the environment variable BATON_SECRETS names. The rest of the environment is not read.
BATON_SECRETS: dict[str, str] = {}
BATON_SECRETS_PATH = os.environ.get("BATON_SECRETS", "")
# The outbound policy of connectors (engine/connectors/outbound.py): link-local, metadata and
# Baton's own database and broker are always refused; with BATON_HTTP_ALLOW_PRIVATE off
# (the default: only the development and test settings turn it on) also loopback and private
# addresses, unless BATON_HTTP_ALLOW lists them (comma-separated CIDRs and host names,
# optionally with :port).
BATON_HTTP_ALLOW_PRIVATE = env.bool("BATON_HTTP_ALLOW_PRIVATE", default=False)
BATON_HTTP_ALLOW = env_list("BATON_HTTP_ALLOW", [])
# The Slack Web API that the slack/PostMessage connector posts to.
# smtp/SendEmail: a log-in without TLS only to a server on loopback ("loopback"), or never.
BATON_SMTP_LOGIN_IN_CLEAR = os.environ.get("BATON_SMTP_LOGIN_IN_CLEAR", "loopback")
BATON_SLACK_API_URL = os.environ.get("BATON_SLACK_API_URL", "https://slack.com/api")
# Other services of Baton's own that connectors must never reach, as host:port (a cache, a
# search index...), refused like the database and broker whatever BATON_HTTP_ALLOW says.
BATON_OWN_SERVICES = env_list("BATON_OWN_SERVICES", [])
# The demo API that the credit-check example calls (served by Baton itself under /demo-api/).
BATON_DEMO_API = env.bool("BATON_DEMO_API", default=True)
# The base URL diagrams reach Baton itself under (scripts see it as `baton_url`): the
# environment's BATON_BASE_URL; else, for manage.py commands beside `make run`, the one it
# wrote into its env file (RUN_ENV_FILE); else the local web server's port.
RUN_ENV_FILE = EMBEDDED_DATA_DIR / "baton.env"


def run_env(name: str) -> str | None:
    """A value `make run` wrote into the checkout's env file (KEY=VALUE lines), if any."""
    try:
        lines = RUN_ENV_FILE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, separator, value = line.partition("=")
        if separator and key.strip() == name:
            return value.strip()
    return None


def public_base_url(*, from_run_env: bool) -> str:
    """BATON_BASE_URL from the environment; else (outside production) what `make run` wrote;
    else the local web server's port."""
    return (
        os.environ.get("BATON_BASE_URL")
        or (run_env("BATON_BASE_URL") if from_run_env else None)
        or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    ).rstrip("/")


BATON_BASE_URL = public_base_url(from_run_env=True)
# This Baton's environment name ("production", "staging", ...): what SpiffArena's `get_env()`
# answers to diagram scripts (they never see the process environment itself).
BATON_ENVIRONMENT_NAME = os.environ.get("BATON_ENVIRONMENT_NAME", "local")

# Timers: how often the beat fires due timers (and timer start events) and re-sends message
# and signal deliveries that are due again; a timer fires within about this much of its time.
BATON_TIMER_INTERVAL_SECONDS = env.float("BATON_TIMER_INTERVAL_SECONDS", default=1)
# History of element runs (engine.services.element_history): none, activity or full.
BATON_HISTORY_LEVEL = os.environ.get("BATON_HISTORY_LEVEL", "activity")
# Who may send messages and signals through the API: the members of these groups
# (comma-separated), operators and superusers; nobody else (engine/permissions.py).
BATON_EVENT_SENDER_GROUPS = env_list("BATON_EVENT_SENDER_GROUPS", ["integrations"])
# Who may fetch and complete external tasks through the API (workers' API tokens belong to
# users in these groups), besides operators and superusers.
BATON_EXTERNAL_WORKER_GROUPS = env_list("BATON_EXTERNAL_WORKER_GROUPS", ["external-workers"])
# The longest a fetch-and-lock waits for a task (its async_response_timeout is cut to this):
# each waiting fetch holds a web worker and a database connection meanwhile.
BATON_EXTERNAL_TASK_MAX_WAIT_SECONDS = env.float("BATON_EXTERNAL_TASK_MAX_WAIT_SECONDS", default=30)
# A message thrown by an instance that no instance waits for yet is tried again this many
# times (1 s, 2 s, 4 s ... apart) before it is given up as unmatched.
BATON_MESSAGE_ATTEMPTS = env.int("BATON_MESSAGE_ATTEMPTS", default=6)
# Long-running calls (http with async_callback): how long a job waits for its callback by
# default, and the longest a diagram's callback_timeout may ask for (seconds).
BATON_CALLBACK_TIMEOUT_SECONDS = env.float("BATON_CALLBACK_TIMEOUT_SECONDS", default=24 * 3600)
BATON_CALLBACK_MAX_TIMEOUT_SECONDS = env.float(
    "BATON_CALLBACK_MAX_TIMEOUT_SECONDS", default=30 * 24 * 3600
)
# Webhooks (engine/services/webhooks_in.py, webhooks_out.py): the largest inbound body; how
# many times an outbound delivery is tried (backoff as for service jobs:
# BATON_RETRY_BASE_SECONDS doubling up to BATON_RETRY_MAX_SECONDS) and its timeout.
BATON_WEBHOOK_MAX_BYTES = env.int("BATON_WEBHOOK_MAX_BYTES", default=256 * 1024)
BATON_WEBHOOK_ATTEMPTS = env.int("BATON_WEBHOOK_ATTEMPTS", default=8)
BATON_WEBHOOK_TIMEOUT_SECONDS = env.float("BATON_WEBHOOK_TIMEOUT_SECONDS", default=10)
# The largest input of a transform/... connector (as JSON or as text), in bytes.
BATON_TRANSFORM_MAX_INPUT_BYTES = env.int("BATON_TRANSFORM_MAX_INPUT_BYTES", default=5_000_000)
# The largest body an HTTP answer may have (http, graphql, llm, slack connectors), decoded,
# in bytes: a larger one is the BPMN error HTTP_RESPONSE_TOO_LARGE, read no further.
BATON_HTTP_MAX_RESPONSE_BYTES = env.int("BATON_HTTP_MAX_RESPONSE_BYTES", default=10_000_000)
# The largest result (or error details) of any connector call, as JSON, in bytes: a larger
# one is an incident, not a row of gigabytes.
BATON_MAX_CONNECTOR_RESULT_BYTES = env.int("BATON_MAX_CONNECTOR_RESULT_BYTES", default=5_000_000)

# A batch operation that made no progress for this long is handed to a worker again (its
# chunk's message was lost, or its worker died); a chunk still running keeps it.
BATON_BATCH_STALLED_SECONDS = env.float("BATON_BATCH_STALLED_SECONDS", default=60)
# How many chunks (of 200 instances) of one batch run at once, on as many workers (at most 16).
BATON_BATCH_PARALLEL_CHUNKS = env.int("BATON_BATCH_PARALLEL_CHUNKS", default=2)
# Housekeeping (engine/services/retention.py, hourly on the beat and `manage.py retention`):
# finished batches (with their items) and delivered or failed outbound webhook deliveries are
# deleted this many days after they finished (were written); 0 keeps them forever.
BATON_BATCH_RETENTION_DAYS = env.float("BATON_BATCH_RETENTION_DAYS", default=30)
BATON_WEBHOOK_DELIVERY_RETENTION_DAYS = env.float(
    "BATON_WEBHOOK_DELIVERY_RETENTION_DAYS", default=30
)

CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "sweep-batches": {
        "task": "baton.sweep_batches",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "sweep-service-jobs": {
        "task": "baton.sweep_service_jobs",
        "schedule": BATON_SWEEP_INTERVAL_SECONDS,
        "options": {"expires": max(2 * BATON_SWEEP_INTERVAL_SECONDS, 10)},
    },
    "delete-expired-records": {
        "task": "baton.delete_expired_records",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    "fire-due-timers": {
        "task": "baton.fire_due_timers",
        "schedule": BATON_TIMER_INTERVAL_SECONDS,
        # A tick nobody ran in time is pointless: the next one does the same work.
        "options": {"expires": max(5 * BATON_TIMER_INTERVAL_SECONDS, 5)},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenWithGroupsAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only; the deployment endpoints also take multipart uploads.
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONWithoutNulParser"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.problem_exception_handler",
}
# Under /api/ a failed CSRF check is a problem+json 403 like every other API error.
CSRF_FAILURE_VIEW = "api.errors.csrf_failure"
SPECTACULAR_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": "Deploy BPMN processes, start instances and work on their tasks.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The docs page's assets are served by Baton itself, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`; each set of choices gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "ServiceJobStatusEnum": "engine.models.ServiceJob.Status",
        "InstanceStatusEnum": "engine.models.ProcessInstance.Status",
        "BatchStatusEnum": "engine.models.Batch.Status",
        "BatchOperationEnum": "engine.models.Batch.Operation",
        "BatchItemOutcomeEnum": "engine.models.BatchItem.Outcome",
        "BatchItemFilterOutcomeEnum": ["pending", "ok", "skipped", "failed"],
        # What became of a message or an inbound webhook delivery.
        "MessageOutcomeEnum": ["correlated", "started", "deferred"],
        # A batch request's schema per operation (api/batch_serializers.py) names just it.
        **{
            "".join(part.title() for part in operation.split("_")) + "OperationEnum": [operation]
            for operation in (
                "suspend",
                "resume",
                "terminate",
                "retry",
                "migrate",
                "delete_finished",
                "set_variables",
            )
        },
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.problem_responses",
    ],
}

# Throttling per user, off unless configured (e.g. BATON_API_USER_RATE=1000/hour).
_USER_RATE = os.environ.get("BATON_API_USER_RATE", "")
_ANON_RATE = os.environ.get("BATON_API_ANON_RATE", "")
if _USER_RATE or _ANON_RATE:
    REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ]
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
        "user": _USER_RATE or None,
        "anon": _ANON_RATE or None,
    }

# Limits on what a deployment may upload (bytes).
BATON_MAX_FILE_BYTES = env.int("BATON_MAX_FILE_BYTES", default=2 * 1024 * 1024)
BATON_MAX_DEPLOYMENT_BYTES = env.int("BATON_MAX_DEPLOYMENT_BYTES", default=10 * 1024 * 1024)
# Request bodies (config/request_limits.py): a body over its cap is refused with a 413 before
# it is read. The deployment endpoints (and the modeler's save) take a deployment plus 1 MiB
# of multipart framing; every other request at most BATON_MAX_JSON_BYTES.
BATON_MAX_JSON_BYTES = env.int("BATON_MAX_JSON_BYTES", default=1024 * 1024)
# Django's own checks stay as a second line behind the caps above; uploaded files are kept in
# memory up to the per-file cap (larger ones are refused anyway).
DATA_UPLOAD_MAX_MEMORY_SIZE = BATON_MAX_DEPLOYMENT_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = BATON_MAX_FILE_BYTES
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("BATON_MAX_DEPLOYMENT_FILES", default=100)
# What a deployment may hold: flow elements (tasks, events, gateways, sequence flows) across
# its files, and how deeply its XML may nest. A start costs web CPU in proportion to the size
# of its process, so the element cap bounds that too.
BATON_MAX_DIAGRAM_ELEMENTS = env.int("BATON_MAX_DIAGRAM_ELEMENTS", default=5000)
# How many instances one multi-instance activity may have (its cardinality or the size of its
# collection): more is an incident naming the activity and the limit.
BATON_MAX_MULTI_INSTANCES = env.int("BATON_MAX_MULTI_INSTANCES", default=10_000)
# libxml2 refuses documents deeper than 256 levels anyway.
BATON_MAX_XML_DEPTH = min(env.int("BATON_MAX_XML_DEPTH", default=64), 255)
# How deeply lists and objects may nest in JSON bodies and stored variables.
BATON_MAX_JSON_DEPTH = env.int("BATON_MAX_JSON_DEPTH", default=64)

# Observing Baton (README): Prometheus metrics at /metrics for a scraper that shows this
# bearer token or connects from one of these networks (comma-separated CIDRs; none by
# default, since behind a reverse proxy every request would come from the proxy's address).
BATON_METRICS_TOKEN = os.environ.get("BATON_METRICS_TOKEN", "")
BATON_METRICS_ALLOW = env_list("BATON_METRICS_ALLOW", [])
# prometheus_client's multiprocess directory: every process started with it in its
# environment writes its metrics there, and /metrics adds them up. Emptied before the
# processes start (`make run` does it under .data/).
BATON_METRICS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
# Log lines as readable text (default) or one JSON object each (`json`); both carry the
# instance, element, job and trace ids of the work they are about.
BATON_LOG_FORMAT = env.str("BATON_LOG_FORMAT", default="text")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "engine.observability.context.LogContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"},
        "json": {"()": "engine.observability.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if BATON_LOG_FORMAT == "json" else "text",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "spiff": {"level": "WARNING"},
        "spiff.metrics": {"level": "WARNING"},
        # httpx logs every request URL at INFO; URLs may carry data that is not ours to log.
        "httpx": {"level": "WARNING"},
        # django-axes logs every login at INFO.
        "axes": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
# One operation (a start, a completed task, a message, a timer, a job's result, a retry) may
# run this many automatic steps, for this long, before it must reach a wait state; past
# either, the instance goes to incident at the element where it stopped (a loop without
# end). A process may set its own with the properties `stepLimit` and `stepTimeLimit`.
# Call activities nest at most BATON_MAX_CALL_DEPTH levels (a process that calls itself).
BATON_STEP_LIMIT = env.int("BATON_STEP_LIMIT", default=10_000)
BATON_STEP_TIME_LIMIT_SECONDS = env.float("BATON_STEP_TIME_LIMIT_SECONDS", default=10)
BATON_MAX_CALL_DEPTH = env.int("BATON_MAX_CALL_DEPTH", default=20)
# Finished tasks that can no longer influence a run leave the instance's state (the element
# history keeps them; engine.bpmn.pruning); besides what must stay, the state keeps this many
# of the latest tasks (a short recent history for the admin's diagram and the trace).
BATON_STATE_HISTORY_SIZE = env.int("BATON_STATE_HISTORY_SIZE", default=50)
