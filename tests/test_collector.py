"""The web application, once loaded as gunicorn loads it (config.wsgi), leaves what it loaded
to the collector's permanent generation (config/collector.py): a full collection during a
request walks only what requests made. (A Celery pool process freezes what it loaded when it
starts, on Celery's worker_process_init: not tested here.)"""

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import production_env

BASE_DIR = Path(__file__).resolve().parent.parent
REPORT = """
import gc, json, sys
import config.wsgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "views_loaded": "api.views.tasks" in sys.modules and "tasks_ui.views" in sys.modules,
}))
"""


def test_the_loaded_web_application_is_out_of_the_collector_s_way(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", REPORT],
        capture_output=True,
        text=True,
        env=production_env(tmp_path),
        check=False,
        cwd=BASE_DIR,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["views_loaded"]  # loaded before the freeze, not by the first request
    assert report["frozen"] > 100_000
    assert report["tracked"] < report["frozen"] / 100  # what a collection still walks
