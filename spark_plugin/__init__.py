"""spark_plugin: OpenLineage events for PySpark jobs from a py4j listener in the driver JVM.

    from spark_plugin import enable
    lineage = enable(spark)                  # url/namespace/options default from SparkConf
    ...                                      # run the job
    spark.stop()                             # flushes (at most flush_timeout_s, default 2 s)
    print(lineage.emitted, lineage.dropped, lineage.failed_posts)

`enable` registers a Python object as a Spark listener in the driver JVM of a classic PySpark
session. It reports the application (START at enable, COMPLETE at stop/close), one run per
root SQL execution and per RDD API job that writes (START, then COMPLETE or FAIL), and one run
per Structured Streaming query run (START, RUNNING per micro-batch, COMPLETE or FAIL), named
and shaped like the OpenLineage Spark integration's events (file dataset names trimmed of
partition and date directories, as it does since 1.39), and posts them to the relay (default
``http://127.0.0.1:5055``) from one background thread through a bounded queue: a slow or dead
receiver never blocks or fails Spark; what cannot be delivered is dropped and counted.

Security: py4j's callback channel. For the JVM to call the listener, py4j's *callback server*
must run in this Python process. It listens on 127.0.0.1 on an ephemeral port. pyspark's own
`ensure_callback_server_started` leaves it **unauthenticated** (the JVM's callback client carries
no token), so any local process that finds the port could call methods of Python objects
registered with py4j. When `enable` starts it, it gives both sides a random token (see
`_callback`; `Lineage.callback_channel` says what happened); a server someone started before
`enable` is kept as it was. It is never reachable beyond loopback.
"""

from ._callback import CallbackChannel
from ._config import PluginConfig
from ._errors import ConfigError, PluginError, UnsupportedSessionError
from ._handle import Lineage, enable

__all__ = [
    "CallbackChannel",
    "ConfigError",
    "Lineage",
    "PluginConfig",
    "PluginError",
    "UnsupportedSessionError",
    "enable",
]
