// Compiled at run time by Janino (which Spark ships) inside the driver JVM: see spark_plugin/_listener.py.
// A SparkListener that stays in the JVM for every event and calls Python only for the three it needs
// (SQL execution start and end, application end), with their fields already flattened into one string.
// Without it, every task, stage, block and metrics event would cross into Python (~20-80 us each) and
// each field read would be one more py4j round trip. Janino accepts a Java subset: no generics, no
// lambdas, explicit casts. Nothing here throws into Spark's listener bus.

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.function.BiConsumer;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.scheduler.SparkListenerEvent;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart;

public class LineageRelayListenerFilter extends SparkListener {
    private static final String SEP = "\u001f";
    private final BiConsumer sink;
    private volatile boolean muted = false;

    public LineageRelayListenerFilter(BiConsumer sink) {
        this.sink = sink;
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
                String header = "E" + SEP + end.executionId() + SEP + end.time();
                if (failure.isDefined()) {
                    Throwable error = (Throwable) failure.get();
                    String message = error.getMessage() != null ? error.getMessage() : error.toString();
                    StringWriter trace = new StringWriter();
                    error.printStackTrace(new PrintWriter(trace));
                    header = header + SEP + "1" + SEP + message + SEP + trace.toString();
                } else {
                    header = header + SEP + "0";
                }
                sink.accept(header, end.qe());
            }
        } catch (Throwable ignored) {
            // the Python side logs its own failures; a broken bridge must not disturb Spark
        }
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
