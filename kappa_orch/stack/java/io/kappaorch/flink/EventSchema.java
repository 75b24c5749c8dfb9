package io.kappaorch.flink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A source's declared columns and event-time rule, as kappa_orch writes them into a job's
 * SQL (a string literal, so that the functions' output type is known at planning time):
 *
 * <pre>from=ts|ahead_ms=3600000|ahead=1h|account:STRING|amount:DECIMAL(10,2):coerce</pre>
 *
 * <p>Options are {@code key=value}; columns are {@code name:TYPE} or {@code name:TYPE:coerce}.
 */
public final class EventSchema {
    public enum Kind { STRING, BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, DATE, TIMESTAMP }

    /** One declared column. */
    public static final class Column {
        public final String name;
        public final String type;
        public final Kind kind;
        public final int precision;
        public final int scale;
        public final boolean coerce;

        Column(String name, String type, boolean coerce) {
            this.name = name;
            this.type = type;
            this.coerce = coerce;
            Matcher decimal = DECIMAL.matcher(type);
            if (decimal.matches()) {
                this.kind = Kind.DECIMAL;
                this.precision = Integer.parseInt(decimal.group(1));
                this.scale = Integer.parseInt(decimal.group(2));
            } else {
                this.precision = 0;
                this.scale = 0;
                switch (type) {
                    case "STRING": this.kind = Kind.STRING; break;
                    case "BOOLEAN": this.kind = Kind.BOOLEAN; break;
                    case "INT": this.kind = Kind.INT; break;
                    case "BIGINT": this.kind = Kind.BIGINT; break;
                    case "DOUBLE": this.kind = Kind.DOUBLE; break;
                    case "DATE": this.kind = Kind.DATE; break;
                    case "TIMESTAMP(3)": this.kind = Kind.TIMESTAMP; break;
                    default: throw new IllegalArgumentException("unsupported column type " + type);
                }
            }
        }
    }

    private static final Pattern DECIMAL = Pattern.compile("DECIMAL\\((\\d{1,2}), ?(\\d{1,2})\\)");
    private static final Map<String, EventSchema> CACHE = new ConcurrentHashMap<>();

    public final List<Column> columns;
    public final Map<String, Integer> index;
    /** The column holding the event time (epoch milliseconds), or null. */
    public final String eventTimeFrom;
    /** How far an event time may be ahead of its record's Kafka timestamp, or -1 (no check). */
    public final long aheadMs;
    public final String aheadText;

    private EventSchema(List<Column> columns, String from, long aheadMs, String aheadText) {
        this.columns = Collections.unmodifiableList(columns);
        Map<String, Integer> positions = new HashMap<>();
        for (int i = 0; i < columns.size(); i++) {
            positions.put(columns.get(i).name, i);
        }
        this.index = Collections.unmodifiableMap(positions);
        this.eventTimeFrom = from;
        this.aheadMs = aheadMs;
        this.aheadText = aheadText;
    }

    /** The schema of a literal, parsed once per distinct text in a JVM. */
    public static EventSchema of(String text) {
        return CACHE.computeIfAbsent(text, EventSchema::parse);
    }

    static EventSchema parse(String text) {
        List<Column> columns = new ArrayList<>();
        String from = null;
        long aheadMs = -1;
        String aheadText = "";
        for (String part : text.split("\\|")) {
            if (part.isEmpty()) {
                continue;
            }
            int eq = part.indexOf('=');
            if (eq > 0 && part.indexOf(':') < 0) {
                String key = part.substring(0, eq);
                String value = part.substring(eq + 1);
                switch (key) {
                    case "from": from = value; break;
                    case "ahead_ms": aheadMs = Long.parseLong(value); break;
                    case "ahead": aheadText = value; break;
                    default: throw new IllegalArgumentException("unknown schema option " + key);
                }
                continue;
            }
            String[] fields = part.split(":");
            if (fields.length < 2 || fields.length > 3 || (fields.length == 3 && !"coerce".equals(fields[2]))) {
                throw new IllegalArgumentException("malformed column " + part);
            }
            columns.add(new Column(fields[0], fields[1], fields.length == 3));
        }
        if (from != null && !columnNamed(columns, from)) {
            throw new IllegalArgumentException("event time column " + from + " is not declared");
        }
        return new EventSchema(columns, from, aheadMs, aheadText);
    }

    private static boolean columnNamed(List<Column> columns, String name) {
        for (Column column : columns) {
            if (column.name.equals(name)) {
                return true;
            }
        }
        return false;
    }
}
