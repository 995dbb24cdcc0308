// Compiled at run time by Janino (which Spark ships) inside the driver JVM, so that a whole
// QueryExecution is summarised in ONE py4j round trip instead of ~1000 (see spark_plugin/_plans.py).
// Janino accepts a Java subset: no generics, no lambdas, explicit casts everywhere. Anything Spark-
// version specific is reached by reflection so that a missing class never breaks compilation.
// digest() never throws: any failure becomes {"error": "..."} for Python.

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.CaseWhen;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.If;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.expressions.WindowExpression;
import org.apache.spark.sql.catalyst.expressions.WindowSpecDefinition;
import org.apache.spark.sql.catalyst.expressions.aggregate.AggregateExpression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

public class LineageRelayPlanDigest {

    private static final int MAX_NODES = 20000;
    private static final String[] MASKING = {
        "Sha1", "Sha2", "Md5", "Crc32", "Murmur3Hash", "XxHash64", "HiveHash", "Mask"
    };

    private final Object session;
    private StringBuilder nodes;
    private int count;
    private List errors;

    public LineageRelayPlanDigest(Object session) {
        this.session = session;
    }

    /** qe: a QueryExecution. withMetrics: also read the executed plan's write metrics. */
    public synchronized String digest(Object qe, boolean withMetrics) {
        nodes = new StringBuilder(4096);
        count = 0;
        errors = new ArrayList();
        try {
            LogicalPlan analyzed = (LogicalPlan) call(qe, "analyzed");
            int root = walk(analyzed);
            StringBuilder out = new StringBuilder(nodes.length() + 512);
            out.append("{\"v\":1,\"root\":").append(root);
            out.append(",\"job_node\":");
            str(out, jobNode(qe));
            if (qe.getClass().getSimpleName().equals("IncrementalExecution")) {
                // a Structured Streaming micro-batch: which query run and batch it belongs to
                out.append(",\"stream\":{\"id\":");
                str(out, optString(callOrNull(qe, "queryId")));
                out.append(",\"run\":");
                str(out, optString(callOrNull(qe, "runId")));
                out.append(",\"batch\":");
                str(out, optString(callOrNull(qe, "currentBatchId")));
                out.append('}');
            }
            out.append(",\"metrics\":{");
            if (withMetrics) {
                metrics(out, qe);
            }
            out.append("},\"sys\":{");
            sys(out);
            out.append("},\"errors\":[");
            for (int i = 0; i < errors.size(); i++) {
                if (i > 0) out.append(',');
                str(out, (String) errors.get(i));
            }
            out.append("],\"nodes\":[").append(nodes).append("]}");
            return out.toString();
        } catch (Throwable t) {
            Throwable cause = unwrap(t);
            return errorJson(cause, ",\"analysis\":" + isAnalysisError(cause) + "}");
        } finally {
            nodes = null;
            errors = null;
        }
    }

    // ---------------------------------------------------------------- RDD jobs

    private static final int MAX_NAME = 120;

    /**
     * An RDD API job, from its ActiveJob: the Hadoop input paths of every RDD its final RDD
     * depends on, the output directory of a saveAsTextFile / saveAsHadoopFile /
     * saveAsNewAPIHadoopFile (kept in the write's configuration, which the final stage's function
     * holds), and a name for the job built from the RDD classes, as the OpenLineage integration does.
     */
    public synchronized String rddDigest(Object activeJob) {
        errors = new ArrayList();
        try {
            Object stage = call(activeJob, "finalStage");
            Object last = call(stage, "rdd");
            IdentityHashMap seen = new IdentityHashMap();
            List inputs = new ArrayList();
            List stack = new ArrayList();
            stack.add(last);
            while (!stack.isEmpty() && seen.size() < MAX_NODES) {
                Object rdd = stack.remove(stack.size() - 1);
                if (seen.containsKey(rdd)) continue;
                seen.put(rdd, Boolean.TRUE);
                try {
                    inputPaths(rdd, inputs);
                } catch (Throwable t) {
                    errors.add("input of " + rdd.getClass().getSimpleName() + ": " + t);
                }
                scala.collection.Iterator deps = ((scala.collection.Iterable) call(rdd, "dependencies")).iterator();
                while (deps.hasNext()) stack.add(call(deps.next(), "rdd"));
            }
            StringBuilder out = new StringBuilder(512);
            out.append("{\"v\":1,\"rdds\":").append(seen.size()).append(",\"name\":");
            String name = rddName(last, new IdentityHashMap());
            if (name.length() > MAX_NAME) {
                int cut = name.lastIndexOf('_', MAX_NAME);
                name = name.substring(0, cut > 0 ? cut : MAX_NAME);
            }
            str(out, name);
            out.append(",\"inputs\":[");
            for (int i = 0; i < inputs.size(); i++) {
                if (i > 0) out.append(',');
                str(out, (String) inputs.get(i));
            }
            out.append("],\"output\":");
            str(out, outputPath(stage));
            out.append(",\"errors\":[");
            for (int i = 0; i < errors.size(); i++) {
                if (i > 0) out.append(',');
                str(out, (String) errors.get(i));
            }
            out.append("]}");
            return out.toString();
        } catch (Throwable t) {
            return errorJson(unwrap(t), "}");
        } finally {
            errors = null;
        }
    }

    private static boolean isA(Object o, String className) {
        for (Class c = o.getClass(); c != null; c = c.getSuperclass()) {
            if (c.getName().equals(className)) return true;
        }
        return false;
    }

    /** Input paths of a HadoopRDD (textFile, hadoopFile, sequenceFile) or NewHadoopRDD. */
    private static void inputPaths(Object rdd, List inputs) throws Exception {
        org.apache.hadoop.mapred.JobConf conf;
        if (isA(rdd, "org.apache.spark.rdd.HadoopRDD")) {
            conf = (org.apache.hadoop.mapred.JobConf) declared(rdd, "getJobConf");
        } else if (isA(rdd, "org.apache.spark.rdd.NewHadoopRDD")) {
            conf = new org.apache.hadoop.mapred.JobConf((org.apache.hadoop.conf.Configuration) declared(rdd, "getConf"));
        } else {
            return;
        }
        org.apache.hadoop.fs.Path[] paths = org.apache.hadoop.mapred.FileInputFormat.getInputPaths(conf);
        for (int i = 0; i < paths.length; i++) {
            String p = paths[i].toString();
            if (!inputs.contains(p)) inputs.add(p);
        }
    }

    /** The output directory a Hadoop write's configuration names, if the final stage writes. */
    private String outputPath(Object stage) {
        try {
            if (!isA(stage, "org.apache.spark.scheduler.ResultStage")) return null;
            Object writeConfig = findField(call(stage, "func"), 2);
            if (writeConfig == null) return null;
            Object jobConf = call(fieldValue(writeConfig, "conf"), "value");
            return (String) callArg(jobConf, "get", "mapreduce.output.fileoutputformat.outputdir");
        } catch (Throwable t) {
            errors.add("output: " + t);
            return null;
        }
    }

    /** The Hadoop write configuration a closure captured (OpenLineage reads `arg$1`). */
    private static Object findField(Object o, int depth) throws Exception {
        if (o == null || depth < 0) return null;
        String k = o.getClass().getSimpleName();
        if (k.equals("HadoopMapRedWriteConfigUtil") || k.equals("HadoopMapReduceWriteConfigUtil")) return o;
        if (o instanceof String || o instanceof Number || o.getClass().isArray()) return null;
        java.lang.reflect.Field[] fields = o.getClass().getDeclaredFields();
        for (int i = 0; i < fields.length; i++) {
            if (java.lang.reflect.Modifier.isStatic(fields[i].getModifiers())
                    || fields[i].getType().isPrimitive()) continue;
            fields[i].setAccessible(true);
            Object found = findField(fields[i].get(o), depth - 1);
            if (found != null) return found;
        }
        return null;
    }

    private static Object fieldValue(Object o, String name) throws Exception {
        for (Class c = o.getClass(); c != null; c = c.getSuperclass()) {
            try {
                java.lang.reflect.Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f.get(o);
            } catch (NoSuchFieldException e) {
                // look in the superclass
            }
        }
        throw new NoSuchFieldException(name);
    }

    /** A method of o's class or a superclass, whatever its access (HadoopRDD.getJobConf is protected). */
    private static Object declared(Object o, String name) throws Exception {
        for (Class c = o.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Method m = c.getDeclaredMethod(name, new Class[0]);
                m.setAccessible(true);
                return m.invoke(o, new Object[0]);
            } catch (NoSuchMethodException e) {
                // look in the superclass
            }
        }
        throw new NoSuchMethodException(name);
    }

    /**
     * The integration's RDD job name: the class of each RDD in snake case without "RDD"
     * (MapPartitionsRDD -> map_partitions), joined along the dependencies; an RDD's own name is
     * used unless it is the path it reads (that would make a job per input path).
     */
    private static String rddName(Object rdd, IdentityHashMap memo) throws Exception {
        String known = (String) memo.get(rdd);
        if (known != null) return known;
        memo.put(rdd, "");  // a cycle (never in a DAG) ends here
        String name = (String) call(rdd, "name");
        List parents = new ArrayList();
        scala.collection.Iterator deps = ((scala.collection.Iterable) call(rdd, "dependencies")).iterator();
        while (deps.hasNext()) parents.add(call(deps.next(), "rdd"));
        boolean reader = isA(rdd, "org.apache.spark.rdd.HadoopRDD") || isA(rdd, "org.apache.spark.rdd.NewHadoopRDD");
        boolean inherited = parents.size() == 1 && name != null && name.equals(call(parents.get(0), "name"));
        if (name == null || reader || inherited) {
            name = snakeClass(rdd.getClass().getSimpleName());
        }
        StringBuilder below = new StringBuilder();
        for (int i = 0; i < parents.size(); i++) {
            String part = rddName(parents.get(i), memo);
            if (part.length() == 0) continue;
            if (below.length() > 0) below.append('_');
            below.append(part);
            if (below.length() > MAX_NAME) break;
        }
        String result = below.length() == 0 ? name
            : below.toString().startsWith(name) ? below.toString() : name + "_" + below;
        memo.put(rdd, result);
        return result;
    }

    private static String snakeClass(String simple) {
        String base = simple.replaceAll("RDD\\d*$", "");
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < base.length(); i++) {
            char c = base.charAt(i);
            if (Character.isUpperCase(c) && i > 0 && !Character.isUpperCase(base.charAt(i - 1))) out.append('_');
            out.append(Character.toLowerCase(c));
        }
        return out.toString();
    }

    private static String errorJson(Throwable cause, String tail) {
        StringBuilder out = new StringBuilder();
        out.append("{\"error\":");
        str(out, cause.getClass().getName() + ": " + cause.getMessage());
        return out.append(tail).toString();
    }

    private static Throwable unwrap(Throwable t) {
        for (int i = 0; i < 8 && t.getCause() != null; i++) {
            if (t instanceof java.lang.reflect.InvocationTargetException
                    || t instanceof java.lang.reflect.UndeclaredThrowableException) {
                t = t.getCause();
            } else {
                break;
            }
        }
        return t;
    }

    /** The execution failed analysis: there is no plan, hence nothing to describe. */
    private static boolean isAnalysisError(Throwable t) {
        for (Class c = t.getClass(); c != null; c = c.getSuperclass()) {
            if (c.getName().equals("org.apache.spark.sql.AnalysisException")) return true;
        }
        return false;
    }

    // ---------------------------------------------------------------- plan walk (post-order)

    private int walk(LogicalPlan p) throws Exception {
        if (count >= MAX_NODES) {
            throw new IllegalStateException("plan has more than " + MAX_NODES + " nodes");
        }
        List kids = new ArrayList();
        scala.collection.Iterator it = p.children().iterator();
        while (it.hasNext()) {
            kids.add(Integer.valueOf(walk((LogicalPlan) it.next())));
        }
        String cls = p.getClass().getName();
        // Commands keep the plan they write in a field that is not a child.
        LogicalPlan inner = innerQuery(p, cls);
        if (inner != null) {
            kids.add(Integer.valueOf(walk(inner)));
        }
        StringBuilder n = new StringBuilder(256);
        List subqueries = new ArrayList();
        n.append("{\"k\":");
        str(n, p.getClass().getSimpleName());
        n.append(",\"c\":[");
        for (int i = 0; i < kids.size(); i++) {
            if (i > 0) n.append(',');
            n.append(kids.get(i));
        }
        n.append("],\"o\":");
        attrs(n, p.output());
        StringBuilder x = new StringBuilder();
        try {
            expressions(x, p, cls, subqueries);
        } catch (Throwable t) {
            errors.add("expressions of " + p.getClass().getSimpleName() + ": " + t);
        }
        if (x.length() > 0) {
            n.append(",\"x\":[").append(x).append(']');
        }
        if (!subqueries.isEmpty()) {
            n.append(",\"sq\":[");
            for (int i = 0; i < subqueries.size(); i++) {
                if (i > 0) n.append(',');
                n.append(subqueries.get(i));
            }
            n.append(']');
        }
        try {
            details(n, p, cls);
        } catch (Throwable t) {
            errors.add("details of " + p.getClass().getSimpleName() + ": " + t);
        }
        n.append('}');
        if (count > 0) nodes.append(',');
        nodes.append(n);
        return count++;
    }

    private LogicalPlan innerQuery(LogicalPlan p, String cls) {
        if (cls.endsWith(".CreateDataSourceTableAsSelectCommand")
                || cls.endsWith(".SaveIntoDataSourceCommand")
                || cls.endsWith(".CreateHiveTableAsSelectCommand")
                || cls.endsWith(".OptimizedCreateHiveTableAsSelectCommand")
                || cls.endsWith(".SaveAsV1TableCommand")
                || cls.endsWith(".InsertIntoDataSourceDirCommand")
                || cls.endsWith(".InsertIntoDataSourceCommand")
                || cls.endsWith(".CreateViewCommand")) {
            Object q = callOrNull(p, "query");
            if (q instanceof LogicalPlan && !isChild(p, q)) {
                return (LogicalPlan) q;
            }
        }
        return null;
    }

    private static boolean isChild(LogicalPlan p, Object q) {
        scala.collection.Iterator it = p.children().iterator();
        while (it.hasNext()) {
            if (it.next() == q) return true;
        }
        return false;
    }

    // ---------------------------------------------------------------- expressions for lineage

    // Each entry: [defined exprId or -1, name, [[refExprId, code], ...]]. Codes: I identity,
    // T transformation, A aggregation (direct); C conditional, W window (field-level indirect);
    // F filter, J join, G group by, S sort (dataset-level indirect). Suffix M = masking.
    private void expressions(StringBuilder x, LogicalPlan p, String cls, List sq) throws Exception {
        String k = p.getClass().getSimpleName();
        if (k.equals("Project")) {
            named(x, (scala.collection.Iterable) call(p, "projectList"), sq);
        } else if (k.equals("Aggregate")) {
            plain(x, (scala.collection.Iterable) call(p, "groupingExpressions"), "G", sq);
            named(x, (scala.collection.Iterable) call(p, "aggregateExpressions"), sq);
        } else if (k.equals("Filter")) {
            one(x, (Expression) call(p, "condition"), "F", sq);
        } else if (k.equals("Join")) {
            scala.Option c = (scala.Option) call(p, "condition");
            if (c.isDefined()) one(x, (Expression) c.get(), "J", sq);
        } else if (k.equals("Sort")) {
            plain(x, (scala.collection.Iterable) call(p, "order"), "S", sq);
        } else if (k.equals("Window")) {
            named(x, (scala.collection.Iterable) call(p, "windowExpressions"), sq);
            // partition/order columns only shape the window outputs, not the whole dataset
        } else if (k.equals("Generate")) {
            Expression g = (Expression) call(p, "generator");
            StringBuilder refs = new StringBuilder();
            refs(refs, g, "T", false, sq);
            scala.collection.Iterator it = ((scala.collection.Iterable) call(p, "generatorOutput")).iterator();
            while (it.hasNext()) {
                Attribute a = (Attribute) it.next();
                entry(x, a.exprId().id(), a.name(), refs);
            }
        } else if (k.equals("Expand")) {
            expand(x, p, sq);
        } else if (k.equals("LogicalRelation") || k.equals("HiveTableRelation")
                || k.startsWith("DataSourceV2") || k.equals("LocalRelation")
                || k.equals("Range") || k.equals("LogicalRDD") || k.equals("CTERelationRef")) {
            return;
        } else {
            // Unknown node: keep what it defines (aliases) and walk its subqueries.
            scala.collection.Iterator it = p.expressions().iterator();
            while (it.hasNext()) {
                Expression e = (Expression) it.next();
                if (e instanceof Alias) {
                    namedOne(x, (NamedExpression) e, sq);
                } else {
                    StringBuilder refs = new StringBuilder();
                    refs(refs, e, "T", false, sq);
                }
            }
        }
    }

    private void expand(StringBuilder x, LogicalPlan p, List sq) throws Exception {
        scala.collection.Seq out = (scala.collection.Seq) call(p, "output");
        int n = out.length();
        StringBuilder[] refs = new StringBuilder[n];
        for (int i = 0; i < n; i++) refs[i] = new StringBuilder();
        scala.collection.Iterator rows = ((scala.collection.Iterable) call(p, "projections")).iterator();
        while (rows.hasNext()) {
            scala.collection.Iterator cols = ((scala.collection.Iterable) rows.next()).iterator();
            int i = 0;
            while (cols.hasNext() && i < n) {
                Expression e = (Expression) cols.next();
                refs(refs[i], e, "I", false, sq);
                i++;
            }
        }
        for (int i = 0; i < n; i++) {
            Attribute a = (Attribute) out.apply(i);
            entry(x, a.exprId().id(), a.name(), refs[i]);
        }
    }

    private void named(StringBuilder x, scala.collection.Iterable list, List sq) throws Exception {
        scala.collection.Iterator it = list.iterator();
        while (it.hasNext()) {
            Object e = it.next();
            if (e instanceof Alias) {
                namedOne(x, (NamedExpression) e, sq);
            }
        }
    }

    private void namedOne(StringBuilder x, NamedExpression ne, List sq) throws Exception {
        Expression child = ((Alias) ne).child();
        StringBuilder refs = new StringBuilder();
        // "I" until something other than an attribute or a no-op cast is met
        refs(refs, child, "I", false, sq);
        entry(x, ne.exprId().id(), ne.name(), refs);
    }

    private void plain(StringBuilder x, scala.collection.Iterable list, String code, List sq) throws Exception {
        scala.collection.Iterator it = list.iterator();
        while (it.hasNext()) {
            one(x, (Expression) it.next(), code, sq);
        }
    }

    private void one(StringBuilder x, Expression e, String code, List sq) throws Exception {
        StringBuilder refs = new StringBuilder();
        refs(refs, e, code, false, sq);
        entry(x, -1L, "", refs);
    }

    private void entry(StringBuilder x, long id, String name, StringBuilder refs) {
        if (x.length() > 0) x.append(',');
        x.append('[').append(id).append(',');
        str(x, name);
        x.append(",[").append(refs).append("]]");
    }

    /** Appends [refId,"code"] for each attribute under e, tracking the context code. */
    private void refs(StringBuilder r, Expression e, String code, boolean masked, List sq) throws Exception {
        String k = e.getClass().getSimpleName();
        for (int i = 0; i < MASKING.length; i++) {
            if (k.equals(MASKING[i])) masked = true;
        }
        if (e instanceof Attribute) {
            if (r.length() > 0) r.append(',');
            r.append('[').append(((Attribute) e).exprId().id()).append(",\"").append(code);
            if (masked) r.append('M');
            r.append("\"]");
            return;
        }
        if (e instanceof SubqueryExpression) {
            LogicalPlan plan = (LogicalPlan) call(e, "plan");
            sq.add(Integer.valueOf(walk(plan)));
            String c = code.equals("I") ? "T" : code;
            scala.collection.Iterator it = plan.output().iterator();
            while (it.hasNext()) {
                Attribute a = (Attribute) it.next();
                if (r.length() > 0) r.append(',');
                r.append('[').append(a.exprId().id()).append(",\"").append(c).append("\"]");
            }
            // outer references used by a correlated subquery
            scala.collection.Iterator ch = e.children().iterator();
            while (ch.hasNext()) refs(r, (Expression) ch.next(), c, masked, sq);
            return;
        }
        if (e instanceof AggregateExpression) {
            code = isDirect(code) ? "A" : code;
        } else if (e instanceof WindowExpression) {
            WindowExpression w = (WindowExpression) e;
            refs(r, w.windowFunction(), isDirect(code) ? (isAggregate(w.windowFunction()) ? "A" : "T") : code, masked, sq);
            WindowSpecDefinition spec = w.windowSpec();
            scala.collection.Iterator it = spec.children().iterator();
            while (it.hasNext()) refs(r, (Expression) it.next(), isDirect(code) ? "W" : code, masked, sq);
            return;
        } else if (e instanceof If) {
            If f = (If) e;
            refs(r, f.predicate(), isDirect(code) ? "C" : code, masked, sq);
            refs(r, f.trueValue(), step(code), masked, sq);
            refs(r, f.falseValue(), step(code), masked, sq);
            return;
        } else if (e instanceof CaseWhen) {
            CaseWhen cw = (CaseWhen) e;
            scala.collection.Iterator it = cw.branches().iterator();
            while (it.hasNext()) {
                scala.Tuple2 b = (scala.Tuple2) it.next();
                refs(r, (Expression) b._1(), isDirect(code) ? "C" : code, masked, sq);
                refs(r, (Expression) b._2(), step(code), masked, sq);
            }
            if (cw.elseValue().isDefined()) refs(r, (Expression) cw.elseValue().get(), step(code), masked, sq);
            return;
        } else if (k.equals("Cast") && e.children().size() == 1
                && ((Expression) e.children().head()).dataType().equals(e.dataType())) {
            // a cast to the type it already has (views add these): still the same value
        } else if (!(e instanceof Alias)) {
            code = step(code);
        }
        scala.collection.Iterator it = e.children().iterator();
        while (it.hasNext()) refs(r, (Expression) it.next(), code, masked, sq);
    }

    private static boolean isDirect(String code) {
        return code.equals("I") || code.equals("T") || code.equals("A");
    }

    /** Going below a non-trivial expression turns identity into transformation. */
    private static String step(String code) {
        return code.equals("I") ? "T" : code;
    }

    private static boolean isAggregate(Expression e) {
        return e instanceof AggregateExpression
            || e instanceof org.apache.spark.sql.catalyst.expressions.aggregate.AggregateFunction;
    }

    // ---------------------------------------------------------------- relations and commands

    private void details(StringBuilder n, LogicalPlan p, String cls) throws Exception {
        String k = p.getClass().getSimpleName();
        if (k.equals("LogicalRelation")) {
            n.append(",\"rel\":");
            logicalRelation(n, p);
        } else if (k.equals("HiveTableRelation")) {
            n.append(",\"rel\":{\"t\":\"hive\",\"table\":");
            table(n, call(p, "tableMeta"));
            n.append('}');
        } else if (k.equals("DataSourceV2Relation") || k.equals("DataSourceV2ScanRelation")) {
            Object rel = k.equals("DataSourceV2Relation") ? p : call(p, "relation");
            n.append(",\"rel\":");
            v2Relation(n, rel);
        } else if (k.startsWith("StreamingDataSourceV2")) {
            Object rel = callOrNull(p, "relation");
            n.append(",\"rel\":{\"t\":\"stream_v2\",\"cls\":");
            Object stream = callOrNull(p, "stream");
            str(n, stream == null ? null : stream.getClass().getName());
            n.append(",\"options\":");
            kafkaOptions(n, rel == null ? null : callOrNull(rel, "options"));
            n.append('}');
        } else if (k.equals("CTERelationDef")) {
            n.append(",\"cte\":").append(call(p, "id"));
        } else if (k.equals("CTERelationRef")) {
            n.append(",\"cte\":").append(call(p, "cteId"));
        } else {
            command(n, p, k);
        }
    }

    private void logicalRelation(StringBuilder n, Object lr) throws Exception {
        Object rel = call(lr, "relation");
        String rk = rel.getClass().getSimpleName();
        scala.Option ct = (scala.Option) call(lr, "catalogTable");
        if (rk.equals("HadoopFsRelation")) {
            n.append("{\"t\":\"fs\",\"fmt\":");
            str(n, String.valueOf(call(rel, "fileFormat")));
            n.append(",\"streaming\":").append(Boolean.TRUE.equals(callOrNull(lr, "isStreaming")));
            // a file stream source reads each batch's files with basePath = the source directory
            n.append(",\"base\":");
            str(n, optString(callArg(call(rel, "options"), "get", "basePath")));
            n.append(",\"paths\":");
            strings(n, call(call(rel, "location"), "rootPaths"));
        } else if (rk.equals("JDBCRelation")) {
            Object opts = call(rel, "jdbcOptions");
            n.append("{\"t\":\"jdbc\",\"url\":");
            str(n, (String) call(opts, "url"));
            Object params = call(opts, "parameters");
            n.append(",\"dbtable\":");
            str(n, optString(callArg(params, "get", "dbtable")));
            n.append(",\"query\":");
            str(n, optString(callArg(params, "get", "query")));
        } else {
            n.append("{\"t\":\"other\",\"cls\":");
            str(n, rel.getClass().getName());
        }
        n.append(",\"table\":");
        if (ct.isDefined()) table(n, ct.get()); else n.append("null");
        n.append('}');
    }

    private void v2Relation(StringBuilder n, Object rel) throws Exception {
        Object t = call(rel, "table");
        n.append("{\"t\":\"v2\",\"name\":");
        str(n, (String) call(t, "name"));
        n.append(",\"cls\":");
        str(n, t.getClass().getName());
        scala.Option id = (scala.Option) callOrNull(rel, "identifier");
        n.append(",\"ident\":");
        if (id != null && id.isDefined()) {
            Object ident = id.get();
            String[] ns = (String[]) call(ident, "namespace");
            StringBuilder s = new StringBuilder();
            for (int i = 0; i < ns.length; i++) s.append(ns[i]).append('.');
            s.append((String) call(ident, "name"));
            str(n, s.toString());
        } else {
            n.append("null");
        }
        scala.Option cat = (scala.Option) callOrNull(rel, "catalog");
        n.append(",\"catalog\":");
        if (cat != null && cat.isDefined()) str(n, (String) call(cat.get(), "name")); else n.append("null");
        Object fileIndex = callOrNull(t, "fileIndex");
        if (fileIndex != null) {
            // file sources read through DataSource V2 (spark.sql.sources.useV1SourceList)
            n.append(",\"paths\":");
            strings(n, call(fileIndex, "rootPaths"));
        }
        Object jdbc = callOrNull(t, "jdbcOptions");
        if (jdbc != null) {
            // JDBCTableCatalog tables: name them as JDBC datasets
            n.append(",\"url\":");
            str(n, (String) call(jdbc, "url"));
        }
        Object props = callOrNull(t, "properties");
        n.append(",\"location\":");
        str(n, props instanceof java.util.Map ? (String) ((java.util.Map) props).get("location") : null);
        n.append(",\"provider\":");
        str(n, props instanceof java.util.Map ? (String) ((java.util.Map) props).get("provider") : null);
        n.append(",\"schema\":");
        schema(n, (StructType) call(t, "schema"));
        n.append('}');
    }

    private static final String[] KAFKA_KEYS = {"kafka.bootstrap.servers", "subscribe", "assign", "topic"};

    /** The options that name Kafka datasets (a CaseInsensitiveStringMap or a Scala Map). */
    private void kafkaOptions(StringBuilder n, Object options) {
        n.append('{');
        boolean first = true;
        for (int i = 0; options != null && i < KAFKA_KEYS.length; i++) {
            Object v;
            try {
                v = callArg(options, "get", KAFKA_KEYS[i]);
            } catch (Throwable t) {
                v = null;
            }
            String value = optString(v);
            if (value == null) continue;
            if (!first) n.append(',');
            first = false;
            str(n, KAFKA_KEYS[i]);
            n.append(':');
            str(n, value);
        }
        n.append('}');
    }

    private void command(StringBuilder n, LogicalPlan p, String k) throws Exception {
        if (k.equals("WriteToMicroBatchDataSourceV1")) {
            // a micro-batch into a V1 sink: FileStreamSink (path), ForeachBatchSink, ...
            Object sinkObject = call(p, "sink");
            n.append(",\"cmd\":{\"t\":\"stream_sink\",\"kind\":");
            str(n, sinkObject.getClass().getSimpleName());
            n.append(",\"path\":");
            Object path = null;
            try {
                path = fieldValue(sinkObject, "path");
            } catch (Throwable t) {
                path = null;
            }
            str(n, path == null ? null : String.valueOf(path));
            scala.Option ct = (scala.Option) callOrNull(p, "catalogTable");
            n.append(",\"table\":");
            if (ct != null && ct.isDefined()) table(n, ct.get()); else n.append("null");
            n.append('}');
            return;
        }
        if (k.equals("WriteToMicroBatchDataSource")) {
            Object t = call(p, "table");
            n.append(",\"cmd\":{\"t\":\"stream_sink\",\"kind\":");
            str(n, t.getClass().getSimpleName());
            n.append(",\"options\":");
            kafkaOptions(n, callOrNull(p, "writeOptions"));
            scala.Option rel = (scala.Option) callOrNull(p, "relation");
            n.append(",\"rel\":");
            if (rel != null && rel.isDefined()) v2Relation(n, rel.get()); else n.append("null");
            n.append('}');
            return;
        }
        if (k.equals("InsertIntoHadoopFsRelationCommand")) {
            n.append(",\"cmd\":{\"t\":\"insert_fs\",\"path\":");
            str(n, call(p, "outputPath").toString());
            n.append(",\"mode\":");
            str(n, String.valueOf(call(p, "mode")));
            n.append(",\"fmt\":");
            str(n, String.valueOf(call(p, "fileFormat")));
            scala.Option ct = (scala.Option) call(p, "catalogTable");
            n.append(",\"table\":");
            if (ct.isDefined()) table(n, ct.get()); else n.append("null");
            cols(n, p);
            n.append('}');
        } else if (k.equals("InsertIntoHiveTable")) {
            n.append(",\"cmd\":{\"t\":\"insert_hive\",\"overwrite\":").append(call(p, "overwrite"));
            n.append(",\"table\":");
            table(n, call(p, "table"));
            cols(n, p);
            n.append('}');
        } else if (k.equals("CreateDataSourceTableAsSelectCommand")) {
            n.append(",\"cmd\":{\"t\":\"ctas\",\"mode\":");
            str(n, String.valueOf(call(p, "mode")));
            n.append(",\"table\":");
            table(n, call(p, "table"));
            cols(n, p);
            n.append('}');
        } else if (k.equals("CreateHiveTableAsSelectCommand") || k.equals("OptimizedCreateHiveTableAsSelectCommand")
                || k.equals("SaveAsV1TableCommand")) {
            n.append(",\"cmd\":{\"t\":\"ctas\",\"mode\":");
            str(n, String.valueOf(call(p, "mode")));
            n.append(",\"table\":");
            table(n, call(p, "tableDesc"));
            cols(n, p);
            n.append('}');
        } else if (k.equals("CreateTableCommand") || k.equals("CreateDataSourceTableCommand")) {
            n.append(",\"cmd\":{\"t\":\"create\",\"table\":");
            table(n, call(p, "table"));
            n.append('}');
        } else if (k.equals("SaveIntoDataSourceCommand")) {
            Object ds = call(p, "dataSource");
            Object opts = call(p, "options");
            n.append(",\"cmd\":{\"t\":\"save_ds\",\"provider\":");
            str(n, ds.getClass().getName());
            n.append(",\"mode\":");
            str(n, String.valueOf(call(p, "mode")));
            n.append(",\"url\":");
            str(n, optString(callArg(opts, "get", "url")));
            n.append(",\"dbtable\":");
            str(n, optString(callArg(opts, "get", "dbtable")));
            n.append(",\"path\":");
            str(n, optString(callArg(opts, "get", "path")));
            n.append('}');
        } else if (k.equals("InsertIntoDataSourceCommand")) {
            // INSERT into a catalog table backed by an InsertableRelation (e.g. USING jdbc)
            n.append(",\"cmd\":{\"t\":\"insert_ds\",\"overwrite\":").append(call(p, "overwrite"));
            n.append(",\"rel\":");
            logicalRelation(n, call(p, "logicalRelation"));
            n.append('}');
        } else if (k.equals("InsertIntoDataSourceDirCommand")) {
            Object storage = call(p, "storage");
            scala.Option loc = (scala.Option) call(storage, "locationUri");
            n.append(",\"cmd\":{\"t\":\"insert_dir\",\"overwrite\":").append(call(p, "overwrite"));
            n.append(",\"path\":");
            str(n, loc.isDefined() ? loc.get().toString() : null);
            n.append('}');
        } else if (k.equals("DropTableCommand") || k.equals("TruncateTableCommand")) {
            Object ident = call(p, "tableName");
            n.append(",\"cmd\":{\"t\":");
            str(n, k.equals("DropTableCommand") ? "drop" : "truncate");
            n.append(",\"table\":");
            Object meta = lookupTable(ident);
            if (meta != null) table(n, meta); else identOnly(n, ident);
            n.append('}');
        } else if (k.equals("DropTable")) {
            // Spark 4 plans DROP TABLE as a v2 command over a ResolvedIdentifier
            Object ident = call(call(p, "child"), "identifier");
            String[] ns = (String[]) call(ident, "namespace");
            String db = ns.length > 0 ? ns[ns.length - 1] : null;
            Object tid = new org.apache.spark.sql.catalyst.TableIdentifier(
                (String) call(ident, "name"), scala.Option.apply(db));
            n.append(",\"cmd\":{\"t\":\"drop\",\"table\":");
            Object meta = lookupTable(tid);
            if (meta != null) {
                table(n, meta);
            } else {
                n.append("{\"db\":");
                str(n, db);
                n.append(",\"name\":");
                str(n, (String) call(ident, "name"));
                n.append(",\"location\":");
                String location = null;
                try {
                    Object catalog = call(call(session, "sessionState"), "catalog");
                    location = callArg(catalog, "defaultTablePath", tid).toString();
                } catch (Throwable e) {
                    errors.add("table location: " + e);
                }
                str(n, location);
                n.append('}');
            }
            n.append('}');
        } else if (k.equals("AppendData") || k.equals("OverwriteByExpression")
                || k.equals("OverwritePartitionsDynamic")) {
            n.append(",\"cmd\":{\"t\":\"v2_write\",\"overwrite\":").append(!k.equals("AppendData"));
            Object t = call(p, "table");
            n.append(",\"rel\":");
            if (t.getClass().getSimpleName().equals("DataSourceV2Relation")) v2Relation(n, t); else n.append("null");
            n.append('}');
        }
    }

    private void cols(StringBuilder n, LogicalPlan p) {
        Object names = callOrNull(p, "outputColumnNames");
        if (names instanceof scala.collection.Iterable) {
            n.append(",\"cols\":");
            strings(n, names);
        }
    }

    private Object lookupTable(Object ident) {
        try {
            Object catalog = call(call(session, "sessionState"), "catalog");
            Object exists = callArg(catalog, "tableExists", ident);
            if (Boolean.TRUE.equals(exists)) return callArg(catalog, "getTableMetadata", ident);
        } catch (Throwable t) {
            errors.add("table lookup: " + t);
        }
        return null;
    }

    private void identOnly(StringBuilder n, Object ident) throws Exception {
        n.append("{\"db\":");
        str(n, optString(call(ident, "database")));
        n.append(",\"name\":");
        str(n, (String) call(ident, "table"));
        n.append('}');
    }

    private void table(StringBuilder n, Object t) throws Exception {
        Object ident = call(t, "identifier");
        n.append("{\"db\":");
        String db = optString(call(ident, "database"));
        if (db == null) {
            try {
                db = (String) call(call(call(session, "sessionState"), "catalog"), "getCurrentDatabase");
            } catch (Throwable e) {
                db = null;
            }
        }
        str(n, db);
        n.append(",\"name\":");
        str(n, (String) call(ident, "table"));
        n.append(",\"catalog\":");
        str(n, optString(callOrNull(ident, "catalog")));
        n.append(",\"type\":");
        str(n, String.valueOf(call(call(t, "tableType"), "name")));
        n.append(",\"provider\":");
        str(n, optString(call(t, "provider")));
        Object storage = call(t, "storage");
        scala.Option loc = (scala.Option) call(storage, "locationUri");
        String location = loc.isDefined() ? loc.get().toString() : null;
        if (location == null) {
            // CTAS before creation, saveAsTable's outer command: ask the catalog.
            try {
                Object catalog = call(call(session, "sessionState"), "catalog");
                Object qualified = new org.apache.spark.sql.catalyst.TableIdentifier(
                    (String) call(ident, "table"), scala.Option.apply(db));
                Object meta = lookupTable(qualified);
                if (meta != null) {
                    scala.Option l2 = (scala.Option) call(call(meta, "storage"), "locationUri");
                    if (l2.isDefined()) location = l2.get().toString();
                }
                if (location == null) {
                    location = callArg(catalog, "defaultTablePath", qualified).toString();
                }
            } catch (Throwable e) {
                errors.add("table location: " + e);
            }
        }
        n.append(",\"location\":");
        str(n, location);
        n.append(",\"schema\":");
        schema(n, (StructType) call(t, "schema"));
        n.append('}');
    }

    // ---------------------------------------------------------------- small helpers

    private void attrs(StringBuilder n, scala.collection.Seq out) {
        n.append('[');
        scala.collection.Iterator it = out.iterator();
        boolean first = true;
        while (it.hasNext()) {
            Attribute a = (Attribute) it.next();
            if (!first) n.append(',');
            first = false;
            n.append('[');
            str(n, a.name());
            n.append(',').append(a.exprId().id()).append(',');
            type(n, a.dataType());
            n.append(']');
        }
        n.append(']');
    }

    private void schema(StringBuilder n, StructType st) {
        n.append('[');
        StructField[] fields = st.fields();
        for (int i = 0; i < fields.length; i++) {
            if (i > 0) n.append(',');
            n.append('[');
            str(n, fields[i].name());
            n.append(',');
            type(n, fields[i].dataType());
            n.append(']');
        }
        n.append(']');
    }

    /** "typeName" or ["struct", [[name, type], ...]] for nested structs. */
    private void type(StringBuilder n, DataType t) {
        if (t instanceof StructType) {
            n.append("[\"struct\",");
            schema(n, (StructType) t);
            n.append(']');
        } else {
            str(n, t.typeName());
        }
    }

    /** The DataWritingCommandExec of a write, also when AQE wrapped it into a query stage. */
    private static Object writeExec(Object plan) throws Exception {
        for (int depth = 0; plan != null && depth < 6; depth++) {
            String k = plan.getClass().getSimpleName();
            if (k.equals("DataWritingCommandExec")) return plan;
            if (k.equals("AdaptiveSparkPlanExec")) {
                plan = call(plan, "executedPlan");
            } else if (k.endsWith("QueryStageExec")) {
                plan = call(plan, "plan");
            } else if (k.equals("CommandResultExec")) {
                plan = call(plan, "commandPhysicalPlan");
            } else {
                return null;
            }
        }
        return null;
    }

    private void metrics(StringBuilder out, Object qe) {
        try {
            Object exec = writeExec(call(qe, "executedPlan"));
            if (exec == null) return;
            scala.collection.Map m = (scala.collection.Map) call(call(exec, "cmd"), "metrics");
            scala.collection.Iterator it = m.iterator();
            boolean first = true;
            while (it.hasNext()) {
                scala.Tuple2 kv = (scala.Tuple2) it.next();
                if (!first) out.append(',');
                first = false;
                str(out, (String) kv._1());
                out.append(':').append(String.valueOf(call(kv._2(), "value")));
            }
        } catch (Throwable t) {
            errors.add("metrics: " + t);
        }
    }

    private String jobNode(Object qe) {
        try {
            Object plan = call(qe, "executedPlan");
            String k = plan.getClass().getSimpleName();
            if (k.equals("WholeStageCodegenExec")) {
                plan = call(plan, "child");
            } else if (k.equals("AdaptiveSparkPlanExec")) {
                // AQE wraps writes in Spark 4: name the job after the write, not the wrapper
                Object exec = writeExec(plan);
                if (exec != null) plan = exec;
            }
            return (String) call(plan, "nodeName");
        } catch (Throwable t) {
            errors.add("executed plan: " + t);
            return null;
        }
    }

    private void sys(StringBuilder out) {
        String[] keys = {"spark.sql.catalogImplementation", "spark.sql.hive.metastore.uris",
                         "spark.hadoop.hive.metastore.uris", "spark.sql.warehouse.dir"};
        boolean first = true;
        try {
            Object conf = call(call(session, "sparkContext"), "conf");
            for (int i = 0; i < keys.length; i++) {
                Object v = call2(conf, "get", keys[i], null);
                if (!first) out.append(',');
                first = false;
                str(out, keys[i]);
                out.append(':');
                str(out, (String) v);
            }
            Object hadoop = call(call(session, "sparkContext"), "hadoopConfiguration");
            out.append(",\"hive.metastore.uris\":");
            str(out, (String) callArg(hadoop, "get", "hive.metastore.uris"));
        } catch (Throwable t) {
            errors.add("conf: " + t);
        }
        if (!first) out.append(',');
        out.append("\"derby.system.home\":");
        str(out, System.getProperty("derby.system.home"));
        out.append(",\"user.dir\":");
        str(out, System.getProperty("user.dir"));
    }

    private static String optString(Object o) {
        if (o instanceof scala.Option) {
            scala.Option opt = (scala.Option) o;
            return opt.isDefined() ? String.valueOf(opt.get()) : null;
        }
        return o == null ? null : String.valueOf(o);
    }

    private static final Map METHODS = new HashMap();

    /** Public method `name` of o's class accepting args (cached: reflection lookups are slow). */
    private static Method method(Class c, String name, Object[] args) throws Exception {
        StringBuilder key = new StringBuilder(c.getName()).append('#').append(name);
        for (int i = 0; i < args.length; i++) {
            key.append('/').append(args[i] == null ? "null" : args[i].getClass().getName());
        }
        String k = key.toString();
        synchronized (METHODS) {
            Method m = (Method) METHODS.get(k);
            if (m != null) return m;
            Method[] all = c.getMethods();
            for (int i = 0; i < all.length && m == null; i++) {
                if (!all[i].getName().equals(name) || all[i].getParameterCount() != args.length) continue;
                Class[] types = all[i].getParameterTypes();
                boolean ok = true;
                for (int j = 0; j < args.length; j++) {
                    if (args[j] != null && !types[j].isInstance(args[j])) ok = false;
                }
                if (ok) m = all[i];
            }
            if (m == null) throw new NoSuchMethodException(k);
            m.setAccessible(true);
            METHODS.put(k, m);
            return m;
        }
    }

    private static Object call(Object o, String name) throws Exception {
        return method(o.getClass(), name, new Object[0]).invoke(o, new Object[0]);
    }

    private static Object callOrNull(Object o, String name) {
        try {
            return call(o, name);
        } catch (Throwable t) {
            return null;
        }
    }

    private static Object callArg(Object o, String name, Object arg) throws Exception {
        Object[] args = new Object[] {arg};
        return method(o.getClass(), name, args).invoke(o, args);
    }

    private static Object call2(Object o, String name, Object a, Object b) throws Exception {
        Object[] args = new Object[] {a, b};
        return method(o.getClass(), name, args).invoke(o, args);
    }

    /** A JSON array of the strings of a Scala collection's elements (paths, column names). */
    private static void strings(StringBuilder b, Object iterable) {
        b.append('[');
        scala.collection.Iterator it = ((scala.collection.Iterable) iterable).iterator();
        boolean first = true;
        while (it.hasNext()) {
            if (!first) b.append(',');
            first = false;
            str(b, String.valueOf(it.next()));
        }
        b.append(']');
    }

    private static void str(StringBuilder b, String s) {
        if (s == null) {
            b.append("null");
            return;
        }
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                String h = Integer.toHexString(c);
                b.append("\\u");
                for (int j = h.length(); j < 4; j++) b.append('0');
                b.append(h);
            } else {
                b.append(c);
            }
        }
        b.append('"');
    }
}
