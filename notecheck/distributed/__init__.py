"""Running the audit on a distributed engine (Apache Spark): `pip install 'notecheck[spark]'`.

spark.py is the public API (audit_dataframe, explode_findings, summarize, audit_path); spark_inputs.py
turns exports into note rows; spark_tasks.py is what the Python workers run; spark_history.py computes the
cross-encounter context with window functions; spark_session.py starts Spark and says why it cannot.
Nothing here is imported by the core package, so the core install never needs pyspark.
"""
