"""Airflow's plugin loader imports every .py file under the plugins folder as a top-level module; the web app's
package there (relative imports) gave "Plugin Import Errors" on Airflow's home page and at the top of every task log.
Loaded here as Airflow loads them (``airflow.plugins_manager``, in a fresh interpreter with this project's plugins
folder), under both syntaxes of ``[core] dag_ignore_file_syntax``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOAD = """
import json, sys
from airflow import plugins_manager
errors = plugins_manager.get_import_errors()
plugins, _ = plugins_manager._get_plugins()
top_level = sorted(m for m in ("app", "auth", "runs", "queries", "picks", "me") if m in sys.modules)
print(json.dumps({"errors": errors, "plugins": sorted(p.name for p in plugins), "top_level": top_level}))
"""


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_airflow_loads_the_plugins_folder_without_import_errors(syntax, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
               AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=syntax, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["errors"] == {}
    assert {"eventindex_web", "eventindex_listeners"} <= set(loaded["plugins"])
    assert loaded["top_level"] == []  # the app's modules are not imported a second time as top-level modules
