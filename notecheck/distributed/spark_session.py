"""Starting Spark for notecheck, and saying clearly why it cannot start.

Three things go wrong on a new machine, each told in one line instead of a JVM stack trace:
pyspark is not installed (`pip install 'notecheck[spark]'`), there is no Java 17+ runtime, or Spark's
Python workers run an interpreter without notecheck (PYSPARK_PYTHON unset or pointing elsewhere, which
shows as ModuleNotFoundError inside a task). For a local master the workers are pointed at this
interpreter; `check_workers` runs one tiny task on the cluster to prove the workers can build the checker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

MIN_JAVA = 17


class SparkSetupError(RuntimeError):
    """Spark cannot run the audit as asked (the CLI's exit status 2)."""


def require_pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkSetupError("the Spark engine needs pyspark: pip install 'notecheck[spark]'") from None
    return SparkSession


def java_version() -> int | None:
    """The major version of the Java that Spark would start (JAVA_HOME's, else `java` on PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m[1])
    return int(m[2]) if major == 1 and m[2] else major   # "1.8.0" is Java 8


def is_local(master: str | None) -> bool:
    return master is None or master.startswith("local")


def get_session(master: str | None = None, conf: dict[str, str] | None = None, app_name: str = "notecheck audit"):
    """The active session if there is one (Databricks, a notebook), else a new one on `master`
    (default local[*])."""
    SparkSession = require_pyspark()
    active = SparkSession.getActiveSession()
    if active is not None:
        if master is not None and active.sparkContext.master != master:
            raise SparkSetupError(f"a Spark session on {active.sparkContext.master} is already running in this "
                                  f"process; it cannot also run on {master} (leave the master out to use it)")
        return active
    version = java_version()
    if version is None:
        raise SparkSetupError(f"Spark needs a Java {MIN_JAVA}+ runtime and none was found (JAVA_HOME is "
                              f"{'set to ' + os.environ['JAVA_HOME'] if os.environ.get('JAVA_HOME') else 'unset'} "
                              "and there is no java on PATH); install one, e.g. apt-get install "
                              "openjdk-17-jre-headless")
    if version < MIN_JAVA:
        raise SparkSetupError(f"Spark needs Java {MIN_JAVA}+; the java found is version {version} "
                              "(set JAVA_HOME to a newer runtime)")
    if is_local(master):
        # Workers are forked from this interpreter's environment: the venv with notecheck in it.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master or "local[*]").appName(app_name)
    log_config = Path(__file__).with_name("log4j2.properties")
    defaults = {"spark.ui.showConsoleProgress": "false", "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.session.timeZone": "UTC",
                "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log_config}"}
    if is_local(master):
        defaults["spark.ui.enabled"] = "false"
    for key, value in {**defaults, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM did not start: say so in one line
        raise SparkSetupError(f"Spark did not start on {master or 'local[*]'} ({_first_line(exc)})") from None
    return spark


def check_workers(spark, profile: str | None = None) -> str:
    """Run one task per core that imports notecheck and builds its checker; returns a worker's interpreter.
    Raises SparkSetupError saying what to set when the workers cannot.

    One task per core, not one: the workers build their checkers side by side, and the audit's first tasks
    find them built (Spark reuses its Python workers)."""
    from .spark_tasks import probe_batches

    cores = max(1, spark.sparkContext.defaultParallelism)
    try:
        row = (spark.range(cores, numPartitions=cores)
               .mapInPandas(probe_batches(profile), "python string, version string").collect()[0])
    except Exception as exc:  # noqa: BLE001 - a Py4J/Python worker error: name the likely cause
        text = str(exc)
        hint = ("set PYSPARK_PYTHON to an interpreter that has notecheck[spark] installed on every worker"
                if "ModuleNotFoundError" in text or "No module named" in text or "Cannot run program" in text
                else "see the Spark worker logs")
        raise SparkSetupError(f"Spark's Python workers cannot run notecheck "
                              f"(PYSPARK_PYTHON={os.environ.get('PYSPARK_PYTHON', 'unset')}): "
                              f"{_worker_error(text)}; {hint}") from None
    return f"{row['python']} (Python {row['version']})"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _worker_error(text: str) -> str:
    # The last "SomethingError: message" line of the Python traceback Spark forwards, without note text
    # (the probe handles no note).
    found = re.findall(r"^\s*(\w+(?:Error|Exception)\b.*)$", text, flags=re.M)
    return (found[-1] if found else _first_line(RuntimeError(text)))[:300]
