"""One way to write a moment on every page that does not choose its own: ISO order, 24-hour
clock, seconds (what operators compare across the admin's lists, pages and audit trail)."""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
