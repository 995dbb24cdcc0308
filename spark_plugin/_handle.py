"""`enable()` and the handle it returns: wires config, sender, plan walker, listener and stop hook.

Order at enable: read the config (a disabled plugin stops here, logged), start py4j's callback
server (loopback only, with an auth token when we start it: see `_callback`), build the plan
walker and the listener, register the listener on its own listener-bus queue, post the
application START, hook `SparkContext.stop`.

Order at close (and so at `spark.stop()`, which calls it first, and at interpreter exit), all
within `flush_timeout_s`: let our listener queue deliver what it holds (the last actions' ends),
remove the listener from the bus (so Spark's own stop never waits on Python), post the
application COMPLETE, give the sender the rest of the deadline, spill what is left (or, with
spilling off, drop and count it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from . import _state
from ._callback import CallbackChannel, start_callback_server
from ._config import PluginConfig, disabled_by_environment, load_plugin_config
from ._errors import ConfigError, UnsupportedSessionError
from ._events import AppContext, RunRef, application_event, new_run_id
from ._listener import LineageListener
from ._model import ExecutionLineage
from ._naming import job_name, snake
from ._registration import ListenerRegistration
from ._sender import Sender
from ._spill import Spill, spill_name

__all__ = ["Lineage", "enable"]

log = logging.getLogger("spark_plugin")

_QUEUE_NAME = "lineage"


class Lineage:
    """What `enable()` returns: counters, `flush()`, `close()`; also a context manager
    (`with enable(spark) as lineage: ...` closes it at the end).

    A disabled plugin (``LINEAGE_ENABLED=false``, ``spark.openlineage.disabled=true``) returns a
    handle whose `enabled` is False and whose methods do nothing.
    """

    def __init__(
        self,
        config: PluginConfig,
        *,
        spark_context: Any = None,
        sender: Sender | None = None,
        listener: LineageListener | None = None,
        registration: ListenerRegistration | None = None,
        context: AppContext | None = None,
    ) -> None:
        self.config = config
        self._spark_context = spark_context
        self._sender = sender
        self._listener = listener
        self._registration = registration
        self._context = context
        self._closed = sender is None
        self.callback_channel: CallbackChannel | None = None  # how the JVM reaches our listener
        self._app_completed = False
        self._original_stop: Any = None

    def __repr__(self) -> str:
        state = "disabled" if not self.enabled else ("closed" if self._closed else "open")
        return (
            f"<spark_plugin.Lineage {state} url={self.config.post_url!r} emitted={self.emitted} "
            f"dropped={self.dropped} failed_posts={self.failed_posts}>"
        )

    def __enter__(self) -> Lineage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._sender is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def emitted(self) -> int:
        """Events the receiver accepted."""
        return self._sender.emitted if self._sender else 0

    @property
    def dropped(self) -> int:
        """Events lost: queue full, undeliverable after retries, or unsent at shutdown."""
        return self._sender.dropped if self._sender else 0

    @property
    def spilled(self) -> int:
        """Events the relay could not take, written to the spill file for it to ingest later."""
        return self._sender.spilled if self._sender else 0

    @property
    def failed_posts(self) -> int:
        """POST attempts that failed (retries included)."""
        return self._sender.failed_posts if self._sender else 0

    @property
    def pending(self) -> int:
        """Events queued or in flight."""
        return self._sender.pending if self._sender else 0

    @property
    def app_run_id(self) -> str | None:
        return self._context.app_run_id if self._context else None

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics and benchmarks."""
        sender, listener = self._sender, self._listener
        return {
            "submitted": sender.submitted if sender else 0,
            "emitted": self.emitted,
            "dropped": self.dropped,
            "dropped_by_reason": dict(sender.dropped_by_reason) if sender else {},
            "spilled": self.spilled,
            "failed_posts": self.failed_posts,
            "pending": self.pending,
            "runs": listener.runs if listener else 0,
            "skipped_executions": listener.skipped if listener else 0,
            "listener_errors": listener.errors if listener else 0,
            "walk_failures": listener.walk_failures if listener else 0,
            "listener_s": listener.callback_s if listener else 0.0,
        }

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait up to `timeout_s` (default `flush_timeout_s`) for what the listener has seen to
        be delivered; True when nothing is left. Never raises."""
        if self._sender is None or self._closed:
            return self.pending == 0
        deadline = time.monotonic() + (
            self.config.flush_timeout_s if timeout_s is None else timeout_s
        )
        try:
            if self._registration is not None and self._registration.active:
                self._registration.wait_until_drained(deadline - time.monotonic())
        except Exception:
            log.debug("lineage-relay: waiting for the listener queue failed", exc_info=True)
        return self._sender.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float | None = None) -> bool:
        """Stop reporting: remove the listener, post the application COMPLETE, flush.

        Takes at most `timeout_s` (default `flush_timeout_s`) plus one plan walk in progress;
        events not delivered by then are spilled (see `_spill`), or dropped and counted when
        spilling is off. Idempotent; never raises.
        True when every event was delivered.
        """
        if self._closed:
            return self.pending == 0
        self._closed = True
        _state.forget(self)
        budget = self.config.flush_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        self._unhook_stop()
        registration, listener, sender = self._registration, self._listener, self._sender
        if sender is None:  # a disabled handle starts closed; kept for the type checker
            return True
        # a SparkContext stopped without our hook (e.g. from the JVM) has no bus left to leave
        jvm_alive = getattr(self._spark_context, "_jsc", None) is not None
        try:
            if registration is not None and listener is not None and jvm_alive:
                listener.mute_after(deadline)
                try:
                    registration.wait_until_drained(deadline - time.monotonic())
                except Exception:
                    log.debug("lineage-relay: waiting for the listener queue failed", exc_info=True)
                registration.remove()
        except Exception:
            log.warning("lineage-relay: could not remove the lineage listener", exc_info=True)
        self._complete_application(int(time.time() * 1000))
        delivered = sender.close(max(0.0, deadline - time.monotonic()))
        log.info(
            "lineage-relay: lineage closed: %d emitted, %d dropped, %d failed POSTs",
            self.emitted,
            self.dropped,
            self.failed_posts,
        )
        return delivered

    # -- internals --------------------------------------------------------------------------

    def _complete_application(self, epoch_ms: int) -> None:
        if self._app_completed or self._context is None or self._sender is None:
            return
        self._app_completed = True
        self._sender.submit(application_event(self._context, "COMPLETE", epoch_ms))

    def _on_application_end(self, epoch_ms: int) -> None:
        """Spark ended the application without our stop hook (e.g. stopped from the JVM)."""
        self._complete_application(epoch_ms)

    def _hook_stop(self) -> None:
        """Make `SparkContext.stop()` (which `SparkSession.stop()` calls) close us first."""
        sc = self._spark_context
        original = sc.stop

        def stop_with_lineage(*args: Any, **kwargs: Any) -> Any:
            try:
                self.close()
            except Exception:  # never let lineage break stop()
                log.debug("lineage-relay: close at stop failed", exc_info=True)
            return original(*args, **kwargs)

        stop_with_lineage.__wrapped__ = original  # type: ignore[attr-defined]
        sc.stop = stop_with_lineage
        self._original_stop = stop_with_lineage

    def _unhook_stop(self) -> None:
        sc = self._spark_context
        if sc is not None and self._original_stop is not None:
            if sc.__dict__.get("stop") is self._original_stop:
                del sc.stop
            self._original_stop = None


def _spark_conf(spark_context: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in spark_context.getConf().getAll()}


def _check_classic(spark: Any) -> None:
    module = type(spark).__module__
    kind = f"{module}.{type(spark).__qualname__}"
    # The module test tells a Spark Connect session for certain (pyspark.sql.connect.*), so the
    # message can say so plainly instead of guessing; the `_jsparkSession` test catches anything
    # else with no driver JVM in this process.
    if "connect" in module.split("."):
        what = f"got a Spark Connect session ({kind}), whose driver JVM is in the Connect server"
    elif getattr(spark, "_jsparkSession", None) is None:
        what = f"got {kind}, which has no driver JVM here (a Spark Connect session?)"
    else:
        return
    raise UnsupportedSessionError(
        f"spark_plugin.enable() needs a classic PySpark session with its driver JVM in this "
        f"process; {what}. "
        "For Spark Connect, register the OpenLineage Spark listener on the Connect server "
        "(spark.extraListeners=io.openlineage.spark.agent.OpenLineageSparkListener, "
        "spark.openlineage.transport.type=http, spark.openlineage.transport.url=<relay URL>) "
        "or use a classic session (spark.api.mode=classic)."
    )


def _context(config: PluginConfig, sc: Any, conf: Mapping[str, str]) -> AppContext:
    app_name = config.app_name or str(sc.appName)
    start_ms = int(sc.startTime)
    details = {
        "master": str(sc.master),
        "appName": app_name,
        "applicationId": str(sc.applicationId),
        "deployMode": conf.get("spark.submit.deployMode", "client"),
        "driverHost": conf.get("spark.driver.host", ""),
        "userName": str(sc.sparkUser()),
    }
    if sc.uiWebUrl:
        details["uiWebUrl"] = str(sc.uiWebUrl)
    parent = root = None
    if config.parent_run_id:
        parent = RunRef(
            config.parent_job_namespace or config.namespace,
            config.parent_job_name,
            config.parent_run_id,
        )
    if config.root_parent_run_id:
        root = RunRef(
            config.root_parent_job_namespace or config.namespace,
            config.root_parent_job_name,
            config.root_parent_run_id,
        )
    return AppContext(
        namespace=config.namespace,
        app_name=app_name,
        app_job_name=snake(app_name) or "spark",
        app_run_id=new_run_id(start_ms),
        spark_version=str(sc.version),
        properties={k: conf[k] for k in config.captured_properties if k in conf},
        application_details={k: v for k, v in details.items() if v},
        parent=parent,
        root=root,
        openmetadata=dict(config.openmetadata),
    )


def enable(
    spark: Any, url: str | None = None, namespace: str | None = None, **options: Any
) -> Lineage:
    """Report this PySpark application's lineage to the relay (or any OpenLineage receiver).

    Returns the handle (`flush`, `close`, counters). Calling it again on the same session
    returns the same handle. Raises `ConfigError` for a wrong option and
    `UnsupportedSessionError` for a Spark Connect session; any other failure to set up is
    logged and gives a disabled handle, so lineage can never stop the job.
    """
    if disabled_by_environment(os.environ):
        log.info("lineage-relay: LINEAGE_ENABLED=false: Spark lineage is disabled")
        return Lineage(PluginConfig(disabled=True))
    _check_classic(spark)
    sc = spark.sparkContext
    with _state.lock:
        known = _state.find(sc)
        if isinstance(known, Lineage):
            if url is not None or namespace is not None or options:
                log.warning("lineage-relay: enable() called again: keeping the first settings")
            return known
        conf = _spark_conf(sc)
        config = load_plugin_config(
            conf, os.environ, {"url": url, "namespace": namespace, **options}
        )
        if config.disabled:
            log.info("lineage-relay: spark.openlineage.disabled=true: Spark lineage is disabled")
            return Lineage(config)
        if "OpenLineageSparkListener" in conf.get("spark.extraListeners", ""):
            log.warning(
                "lineage-relay: the OpenLineage Spark listener jar is registered too "
                "(spark.extraListeners): every run will be reported twice; keep one"
            )
        try:
            handle = _start(spark, sc, config, conf)
        except (ConfigError, UnsupportedSessionError):
            raise
        except Exception:
            log.exception("lineage-relay: could not start Spark lineage; the job runs without it")
            return Lineage(config)
        _state.remember(sc, handle)
        log.info("lineage-relay: reporting Spark lineage to %s", config.post_url)
        return handle


def _start(spark: Any, sc: Any, config: PluginConfig, conf: Mapping[str, str]) -> Lineage:
    from ._plans import PlanWalker
    from ._streaming import StreamingRuns
    from ._trimming import NameTrimming

    gateway = sc._gateway
    channel = start_callback_server(gateway)
    context = _context(config, sc, conf)
    walker = PlanWalker(
        spark._jsparkSession,
        gateway,
        column_lineage_max_columns=config.column_lineage_max_columns,
    )
    spill = None
    if config.spill_max_bytes:
        name = spill_name(str(sc.applicationId), context.app_run_id)
        spill = Spill(config.spill_directory, name, max_bytes=config.spill_max_bytes)
    sender = Sender(config, spill=spill)
    handle = Lineage(config, spark_context=sc, sender=sender, context=context)
    handle.callback_channel = channel

    def name_job(lineage: ExecutionLineage) -> str:
        return job_name(context.app_name, lineage)

    trimming = NameTrimming(config.disabled_trimmers, config.remove_path_pattern)
    listener = LineageListener(
        context=context,
        describe=walker.describe,
        job_name=name_job,
        submit=sender.submit,
        on_application_end=handle._on_application_end,
        describe_start=walker.describe_start if config.early_start else None,
        rename=trimming.apply,
        describe_job=walker.describe_job,
        streams=StreamingRuns(context=context, submit=sender.submit, rename=trimming.apply),
    )
    try:
        registration = ListenerRegistration(
            sc._jsc.sc(),
            gateway,
            listener,
            queue_name=_QUEUE_NAME if config.dedicated_queue else None,
            use_filter=config.jvm_filter,
        )
    except Exception:
        sender.close(0.0)
        raise
    handle._listener = listener
    handle._registration = registration
    sender.submit(application_event(context, "START", int(sc.startTime)))
    handle._hook_stop()
    return handle
