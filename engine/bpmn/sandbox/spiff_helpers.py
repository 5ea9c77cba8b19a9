"""SpiffArena's script helpers, as a sandbox process offers them (safe versions).

The engine computes what they answer before the script runs (the `helpers` of a request,
see engine.bpmn.scripting) and they hand out copies: no helper reaches the database, the
environment, a file or a frame.

- `get_process_initiator_user()`, `get_last_user_completing_task(process_id, task_id)`:
  user dicts (`id`, `username`, `email`, `groups`) or None;
- `get_toplevel_process_info()`: `process_instance_id` and `process_model_identifier`;
- `get_frontend_url()`: Baton's base URL; `get_env()`: Baton's environment name setting;
- `markdown_file_download_link(...)`: Baton's forms have no file fields, so this says so;
- `ZoneInfo(name)`: an IANA time zone (the zone data is read before the sandbox closes);
- `parse_date(text)`: a date written in a common way, as a datetime (or None);
- KKV data stores read by the task: `store("top", "second")` (engine.bpmn.data_stores).
"""

import copy
import datetime
import zoneinfo
from collections.abc import Callable
from io import BytesIO
from typing import Any

from .errors import ScriptNotAllowed
from .limits import check_length

# IANA zone name -> its compiled zone file, read by the zygote before its file system goes.
_ZONE_FILES: dict[str, bytes] = {}
_ZONES: dict[str, datetime.tzinfo] = {}
MAX_DATE_TEXT = 200


def load_zones() -> None:
    """Read every zone file while they can still be read (`process_main._preload`)."""
    for name in sorted(zoneinfo.available_timezones()):
        for directory in zoneinfo.TZPATH:
            try:
                with open(f"{directory}/{name}", "rb") as zone_file:
                    _ZONE_FILES[name] = zone_file.read()
                break
            except OSError:
                continue


def zone(name: Any) -> datetime.tzinfo:
    """`ZoneInfo(name)`: the zone, or ZoneInfoNotFoundError's message as a KeyError."""
    if name in ("UTC", "Etc/UTC") and name not in _ZONE_FILES:
        return datetime.UTC
    if not isinstance(name, str) or name not in _ZONE_FILES:
        raise KeyError(f"No time zone found with key {name!r}")
    if name not in _ZONES:
        _ZONES[name] = zoneinfo.ZoneInfo.from_file(BytesIO(_ZONE_FILES[name]), key=name)
    return _ZONES[name]


def available_timezones() -> list[str]:
    return sorted(_ZONE_FILES)


_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%m/%d/%y",
    "%d.%m.%Y",
    "%B %d, %Y",
    "%B %d %Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%B %d, %Y %H:%M",
    "%d %B %Y %H:%M",
)


def parse_date(text: Any) -> datetime.datetime | None:
    """SpiffArena's `dateparser.parse` for the common written forms: ISO 8601 (with a time
    and an offset), US month/day/year, "January 2, 2024", "2 Jan 2024", "today", "now",
    "yesterday", "tomorrow". None when the text is no date of these forms."""
    if not isinstance(text, str):
        raise TypeError("parse_date() takes text")
    check_length("", len(text))
    value = " ".join(text.split())
    if not value or len(value) > MAX_DATE_TEXT:
        return None
    now = datetime.datetime.now()
    relative = {"now": 0, "today": 0, "yesterday": -1, "tomorrow": 1}
    if value.lower() in relative:
        moment = now + datetime.timedelta(days=relative[value.lower()])
        return (
            moment
            if value.lower() == "now"
            else moment.replace(hour=0, minute=0, second=0, microsecond=0)
        )
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        pass
    for form in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(value, form)
        except ValueError:
            continue
    return None


def markdown_file_download_link(*args: Any, **kwargs: Any) -> str:
    raise ScriptNotAllowed(
        "markdown_file_download_link is not available: Baton's forms have no file fields, "
        "so a process instance has no files to link to."
    )


def _copy_of(value: Any) -> Callable[[], Any]:
    def helper() -> Any:
        return copy.deepcopy(value)

    return helper


def _kkv_reader(entries: dict[str, Any]) -> Callable[..., Any]:
    def read(top_level_key: Any, secondary_key: Any = None) -> Any:
        second_level = entries.get(top_level_key) if isinstance(top_level_key, str) else None
        if not isinstance(second_level, dict):
            return None if secondary_key is not None else {}
        if secondary_key is None:
            return copy.deepcopy(second_level)
        if not isinstance(secondary_key, str):
            return None
        return copy.deepcopy(second_level.get(secondary_key))

    return read


def kkv_readers(helpers: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The KKV stores the task reads, each a function of its id (not helpers: a script that
    assigns the id writes the store)."""
    stores = helpers.get("kkv")
    if not isinstance(stores, dict):
        return {}
    return {
        name: _kkv_reader(entries) for name, entries in stores.items() if isinstance(entries, dict)
    }


def spiff_names(helpers: dict[str, Any]) -> dict[str, Any]:
    last_users = helpers.get("last_users")
    last_users = last_users if isinstance(last_users, dict) else {}

    def get_last_user_completing_task(
        bpmn_process_identifier: Any = None, task_bpmn_identifier: Any = None
    ) -> dict[str, Any] | None:
        user = (
            last_users.get(task_bpmn_identifier) if isinstance(task_bpmn_identifier, str) else None
        )
        return copy.deepcopy(user) if isinstance(user, dict) else None

    toplevel = helpers.get("toplevel") if isinstance(helpers.get("toplevel"), dict) else {}
    initiator = helpers.get("initiator") if isinstance(helpers.get("initiator"), dict) else None
    return {
        "get_process_initiator_user": _copy_of(initiator),
        "get_last_user_completing_task": get_last_user_completing_task,
        "get_toplevel_process_info": _copy_of(toplevel),
        "get_frontend_url": _copy_of(str(helpers.get("baton_url") or "")),
        "get_env": _copy_of(str(helpers.get("env") or "")),
        "markdown_file_download_link": markdown_file_download_link,
        "ZoneInfo": zone,
        "available_timezones": available_timezones,
        "parse_date": parse_date,
    }
