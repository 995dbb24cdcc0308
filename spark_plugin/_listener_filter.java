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
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.execution.QueryExecution;
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
                String header = "E" + SEP + end.executionId() + SEP + end.time() + SEP + sqlText(end);
                if (failure.isDefined()) {
                    Throwable error = (Throwable) failure.get();
                    String message = error.getMessage() != null ? error.getMessage() : error.toString();
                    StringWriter trace = new StringWriter();
                    error.printStackTrace(new PrintWriter(trace));
                    header = header + SEP + "1" + SEP + message.replace(SEP, " ") + SEP + trace.toString();
                } else {
                    header = header + SEP + "0";
                }
                sink.accept(header, end.qe());
            }
        } catch (Throwable ignored) {
            // the Python side logs its own failures; a broken bridge must not disturb Spark
        }
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
