// Compiled at run time by Janino (which Spark ships) inside the driver JVM: see spark_plugin/_listener.py.
// A SparkListener that stays in the JVM for every event and calls Python only for those it needs
// (SQL execution start and end, the end of a job that ran outside any SQL execution, application end),
// with their fields already flattened into one string. It also sums the output metrics of tasks per
// RDD job, so that an RDD job's end carries its written rows and bytes.
// Without it, every task, stage, block and metrics event would cross into Python (~20-80 us each) and
// each field read would be one more py4j round trip. Janino accepts a Java subset: no generics, no
// lambdas, explicit casts. Nothing here throws into Spark's listener bus.

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.function.BiConsumer;

import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.scheduler.SparkListenerEvent;
import org.apache.spark.scheduler.SparkListenerJobEnd;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart;

public class LineageRelayListenerFilter extends SparkListener {
    private static final String SEP = "\u001f";
    // jobs whose start we saw but whose end never came (dropped on a full queue) are forgotten
    private static final int MAX_JOBS = 1000;
    // stages whose output metrics are being summed (their job's or execution's end removes them)
    private static final int MAX_STAGES = 16000;
    private final BiConsumer sink;
    private final Object sparkContext;
    private volatile boolean muted = false;
    // RDD jobs (no SQL execution) between start and end: job id -> {ActiveJob or null, start ms}
    private final Map rddJobs = new LinkedHashMap();
    // stage id -> long[] {records, bytes, job id} written by the tasks of an RDD job's stages
    private final Map stageMetrics = new HashMap();

    public LineageRelayListenerFilter(BiConsumer sink, Object sparkContext) {
        this.sink = sink;
        this.sparkContext = sparkContext;
    }

    /** After this, events are dropped in the JVM without calling Python (shutdown). */
    public void mute() {
        muted = true;
    }

    public void onOtherEvent(SparkListenerEvent event) {
        if (muted) {
            return;
        }
        try {
            if (event instanceof SparkListenerSQLExecutionStart) {
                SparkListenerSQLExecutionStart start = (SparkListenerSQLExecutionStart) event;
                long id = start.executionId();
                long root = id;
                scala.Option rootOption = start.rootExecutionId();
                if (rootOption.isDefined()) {
                    root = ((Long) rootOption.get()).longValue();
                }
                sink.accept("S" + SEP + id + SEP + root + SEP + start.time(), null);
            } else if (event instanceof SparkListenerSQLExecutionEnd) {
                SparkListenerSQLExecutionEnd end = (SparkListenerSQLExecutionEnd) event;
                // errorMessage() is Some("") on success in Spark 4.x: executionFailure() decides
                scala.Option failure = end.executionFailure();
                long[] written = stageMetrics.isEmpty() ? new long[] {0L, 0L} : takeMetrics(-1L - end.executionId());
                // E, id, time, sql text, records, bytes, failed, [message, stack trace]
                String header = "E" + SEP + end.executionId() + SEP + end.time() + SEP + sqlText(end)
                    + SEP + written[0] + SEP + written[1];
                if (failure.isDefined()) {
                    header = header + SEP + "1" + SEP + failure((Throwable) failure.get());
                } else {
                    header = header + SEP + "0";
                }
                sink.accept(header, end.qe());
            } else if (event.getClass().getName().startsWith(STREAMING)) {
                streaming(event);
            }
        } catch (Throwable ignored) {
            // the Python side logs its own failures; a broken bridge must not disturb Spark
        }
    }

    private static final String STREAMING = "org.apache.spark.sql.streaming.StreamingQueryListener$Query";

    /**
     * Structured Streaming query events (StreamingQueryListener's, posted on the listener bus):
     * Q (started): id, run id, name, timestamp; P (progress): the progress as JSON; T (terminated):
     * id, run id, failed, [message].
     */
    private void streaming(SparkListenerEvent event) throws Exception {
        String kind = event.getClass().getName().substring(STREAMING.length());
        if (kind.equals("StartedEvent")) {
            sink.accept("Q" + SEP + get(event, "id") + SEP + get(event, "runId") + SEP
                + clean(get(event, "name")) + SEP + get(event, "timestamp"), null);
        } else if (kind.equals("ProgressEvent")) {
            Object progress = event.getClass().getMethod("progress", new Class[0]).invoke(event, new Object[0]);
            sink.accept("P" + SEP + clean(get(progress, "json")), null);
        } else if (kind.equals("TerminatedEvent")) {
            scala.Option exception = (scala.Option) event.getClass().getMethod("exception", new Class[0]).invoke(event, new Object[0]);
            String header = "T" + SEP + get(event, "id") + SEP + get(event, "runId");
            header = exception.isDefined() ? header + SEP + "1" + SEP + clean(String.valueOf(exception.get())) : header + SEP + "0";
            sink.accept(header, null);
        }
    }

    private static String get(Object o, String name) throws Exception {
        Object value = o.getClass().getMethod(name, new Class[0]).invoke(o, new Object[0]);
        return value == null ? "" : String.valueOf(value);
    }

    private static String clean(String s) {
        return s.replace(SEP, " ");
    }

    /** The statement's text when it came from spark.sql() (the parser keeps it in the origin). */
    private static String sqlText(SparkListenerSQLExecutionEnd end) {
        try {
            QueryExecution qe = end.qe();
            if (qe == null) {
                return "";
            }
            TreeNode plan = qe.logical();
            String text = originText(plan);
            // A command run eagerly (CTAS, INSERT) is a node built by the analyzer without the
            // text; its query, straight below it, was parsed from the same statement.
            scala.collection.Iterator children = plan.children().iterator();
            while (text == null && children.hasNext()) {
                text = originText((TreeNode) children.next());
            }
            scala.collection.Iterator inner = plan.innerChildren().iterator();
            while (text == null && inner.hasNext()) {
                text = originText((TreeNode) inner.next());
            }
            return text == null ? "" : text.replace(SEP, " ");
        } catch (Throwable ignored) {
            return "";
        }
    }

    private static String originText(TreeNode node) {
        scala.Option text = node.origin().sqlText();
        return text.isDefined() ? (String) text.get() : null;
    }

    /**
     * A job outside any SQL execution is an RDD API job. Its ActiveJob (final stage, final RDD, the
     * write's configuration) is only held by the DAGScheduler while the job runs, so it is taken
     * here, at the start, and handed to Python with the end.
     */
    public void onJobStart(SparkListenerJobStart start) {
        if (muted) {
            return;
        }
        try {
            Properties props = start.properties();
            String execution = props == null ? null : props.getProperty("spark.sql.execution.id");
            if (execution != null) {
                // its tasks' output metrics go to the execution's end (streaming file sinks
                // report no write metrics of their own)
                long key = -1L - Long.parseLong(execution);
                scala.collection.Iterator stages = start.stageIds().iterator();
                while (stages.hasNext() && stageMetrics.size() < MAX_STAGES) {
                    stageMetrics.put(stages.next(), new long[] {0L, 0L, key});
                }
                return;
            }
            if (rddJobs.size() >= MAX_JOBS) {
                Iterator oldest = rddJobs.keySet().iterator();
                oldest.next();
                oldest.remove();
            }
            Integer id = Integer.valueOf(start.jobId());
            rddJobs.put(id, new Object[] {activeJob(id), Long.valueOf(start.time())});
            scala.collection.Iterator stages = start.stageIds().iterator();
            while (stages.hasNext() && stageMetrics.size() < MAX_STAGES) {
                stageMetrics.put(stages.next(), new long[] {0L, 0L, start.jobId()});
            }
        } catch (Throwable ignored) {
            // see onOtherEvent
        }
    }

    private Object activeJob(Integer id) {
        try {
            java.lang.reflect.Method dag = sparkContext.getClass().getMethod("dagScheduler", new Class[0]);
            Object scheduler = dag.invoke(sparkContext, new Object[0]);
            java.lang.reflect.Method jobs = scheduler.getClass().getMethod("jobIdToActiveJob", new Class[0]);
            scala.collection.mutable.Map byId = (scala.collection.mutable.Map) jobs.invoke(scheduler, new Object[0]);
            scala.Option job = byId.get(id);
            return job.isDefined() ? job.get() : null;
        } catch (Throwable t) {
            return null;
        }
    }

    public void onTaskEnd(SparkListenerTaskEnd end) {
        if (muted || stageMetrics.isEmpty()) {
            return;
        }
        try {
            long[] sums = (long[]) stageMetrics.get(Integer.valueOf(end.stageId()));
            if (sums != null && end.taskMetrics() != null) {
                sums[0] += end.taskMetrics().outputMetrics().recordsWritten();
                sums[1] += end.taskMetrics().outputMetrics().bytesWritten();
            }
        } catch (Throwable ignored) {
            // see onOtherEvent
        }
    }

    /** Records and bytes written by the stages kept under `key` (a job id, or -1 - execution id). */
    private long[] takeMetrics(long key) {
        long[] total = new long[] {0L, 0L};
        Iterator it = stageMetrics.values().iterator();
        while (it.hasNext()) {
            long[] sums = (long[]) it.next();
            if (sums[2] == key) {
                total[0] += sums[0];
                total[1] += sums[1];
                it.remove();
            }
        }
        return total;
    }

    public void onJobEnd(SparkListenerJobEnd end) {
        if (muted) {
            return;
        }
        try {
            Object[] job = (Object[]) rddJobs.remove(Integer.valueOf(end.jobId()));
            if (job == null) {
                return;
            }
            long[] written = takeMetrics(end.jobId());
            long records = written[0];
            long bytes = written[1];
            // J, job id, start, end, records, bytes, failed, [message, stack trace]
            String header = "J" + SEP + end.jobId() + SEP + job[1] + SEP + end.time() + SEP + records + SEP + bytes;
            Object result = end.jobResult();
            if (result.getClass().getSimpleName().equals("JobFailed")) {
                Throwable error = (Throwable) result.getClass().getMethod("exception", new Class[0]).invoke(result, new Object[0]);
                header = header + SEP + "1" + SEP + failure(error);
            } else {
                header = header + SEP + "0";
            }
            sink.accept(header, job[0]);
        } catch (Throwable ignored) {
            // see onOtherEvent
        }
    }

    /** message SEP stack trace, the message without separators. */
    private static String failure(Throwable error) {
        String message = error.getMessage() != null ? error.getMessage() : error.toString();
        StringWriter trace = new StringWriter();
        error.printStackTrace(new PrintWriter(trace));
        return message.replace(SEP, " ") + SEP + trace.toString();
    }

    public void onApplicationEnd(SparkListenerApplicationEnd event) {
        if (muted) {
            return;
        }
        try {
            sink.accept("A" + SEP + event.time(), null);
        } catch (Throwable ignored) {
            // see onOtherEvent
        }
    }
}
