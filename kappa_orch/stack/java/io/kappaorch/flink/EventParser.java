package io.kappaorch.flink;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One event's payload checked against its source's declared columns, in one pass over
 * its bytes: either every declared column's value, typed, or the one reason the event is
 * dead-lettered.
 *
 * <p>Types are strict: a JSON string is not a number, a number is not a string, a
 * fraction is not an integer, and nothing is rounded, truncated or replaced on the way to
 * the warehouse. A column declared with {@code coerce} also takes the forms listed in
 * docs/spec-reference.md. When an event has several faults, the first in this order is
 * its reason: the payload as a whole (tombstone, not UTF-8, not a JSON object, nested
 * too deep), then each declared column in declaration order (missing, given twice, null,
 * of another JSON type, a value its type cannot hold exactly, text PostgreSQL would
 * alter), then the event time (out of range, implausibly far ahead of the log).
 */
public final class EventParser {
    /** Deeper nesting is refused (Jackson's default limit is 1000; nobody's events nest this deep). */
    public static final int MAX_DEPTH = 500;
    public static final String TOMBSTONE = "empty payload (tombstone)";
    public static final String NOT_UTF8 = "payload is not valid UTF-8";
    public static final String NOT_OBJECT = "not a JSON object";
    public static final String TOO_DEEP = "payload nests deeper than " + MAX_DEPTH + " levels";
    /** Epoch milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z. */
    static final long MIN_MILLIS = -62_135_596_800_000L;
    static final long MAX_MILLIS = 253_402_300_799_999L;

    private static final Pattern NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
    private static final Pattern DATE = Pattern.compile("([0-9]{4})-([0-9]{2})-([0-9]{2})");
    private static final Pattern TIMESTAMP = Pattern.compile(
            "([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]{1,3})?");
    private static final BigInteger MAX_DECIMAL_UNSCALED = BigInteger.TEN.pow(38);
    private static final ThreadLocal<CharsetDecoder> UTF8 = ThreadLocal.withInitial(
            () -> StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT));

    /** The outcome: reason is null and values holds every column, or reason says why not. */
    public static final class Result {
        public final String reason;
        public final Object[] values;
        public final Long eventMillis;

        Result(String reason, Object[] values, Long eventMillis) {
            this.reason = reason;
            this.values = values;
            this.eventMillis = eventMillis;
        }
    }

    private enum Json { STRING, NUMBER, TRUE, FALSE, NULL, OBJECT, ARRAY }

    /** A declared field as found in the payload. */
    private static final class Found {
        Json json;
        String text;  // a string's decoded text, a number's literal
        boolean loneSurrogate;
        boolean twice;
    }

    private static final class Invalid extends Exception {
        final String reason;

        Invalid(String reason) {
            super(reason, null, false, false);
            this.reason = reason;
        }
    }

    private EventParser() {}

    public static Result parse(byte[] payload, Long kafkaMillis, EventSchema schema) {
        if (payload == null) {
            return invalid(TOMBSTONE);
        }
        String text;
        try {
            text = UTF8.get().decode(ByteBuffer.wrap(payload)).toString();
        } catch (CharacterCodingException e) {
            return invalid(NOT_UTF8);
        }
        Found[] found = new Found[schema.columns.size()];
        try {
            new Scanner(text, schema, found).document();
        } catch (Invalid e) {
            return invalid(e.reason);
        }
        Object[] values = new Object[found.length];
        for (int i = 0; i < found.length; i++) {
            EventSchema.Column column = schema.columns.get(i);
            try {
                values[i] = value(column, found[i]);
            } catch (Invalid e) {
                return invalid(e.reason);
            }
        }
        Long millis = null;
        if (schema.eventTimeFrom != null) {
            Object time = values[schema.index.get(schema.eventTimeFrom)];
            if (!(time instanceof Long) && !(time instanceof Integer)) {
                return invalid("event time " + schema.eventTimeFrom + " is not epoch milliseconds (declare it BIGINT)");
            }
            millis = ((Number) time).longValue();
            if (millis < MIN_MILLIS || millis > MAX_MILLIS) {
                return invalid("event time " + schema.eventTimeFrom
                        + " is out of range (epoch milliseconds of the years 1 to 9999)");
            }
            if (schema.aheadMs >= 0 && kafkaMillis != null && millis - schema.aheadMs > kafkaMillis) {
                return invalid(implausible(schema));
            }
        }
        return new Result(null, values, millis);
    }

    /** The reason of an event time too far ahead of the log (also written by kappa_orch in Python). */
    public static String implausible(EventSchema schema) {
        return "event time " + schema.eventTimeFrom + " is more than " + schema.aheadText
                + " ahead of the record's Kafka timestamp (event_time.max_ahead)";
    }

    private static Result invalid(String reason) {
        return new Result(reason, null, null);
    }

    private static String name(Json json) {
        switch (json) {
            case TRUE:
            case FALSE:
                return "boolean";
            default:
                return json.name().toLowerCase();
        }
    }

    private static Invalid wrongJson(EventSchema.Column column, Json json) {
        return new Invalid("field " + column.name + " is a JSON " + name(json) + ", declared " + column.type);
    }

    private static Object value(EventSchema.Column column, Found found) throws Invalid {
        String field = "field " + column.name;
        if (found == null) {
            throw new Invalid(field + " is missing");
        }
        if (found.twice) {
            throw new Invalid(field + " appears more than once");
        }
        if (found.json == Json.NULL) {
            throw new Invalid(field + " is null");
        }
        switch (column.kind) {
            case STRING:
                String text;
                if (found.json == Json.STRING) {
                    text = found.text;
                } else if (column.coerce && (found.json == Json.NUMBER || found.json == Json.TRUE || found.json == Json.FALSE)) {
                    text = found.text;
                } else {
                    throw wrongJson(column, found.json);
                }
                if (found.loneSurrogate) {
                    throw new Invalid(field + " contains a lone UTF-16 surrogate (PostgreSQL would store it as '?')");
                }
                if (text.indexOf('\u0000') >= 0) {
                    throw new Invalid(field + " contains a NUL character (PostgreSQL refuses it)");
                }
                return text;
            case BOOLEAN:
                if (found.json == Json.TRUE || found.json == Json.FALSE) {
                    return found.json == Json.TRUE;
                }
                if (column.coerce && found.json == Json.STRING && ("true".equals(found.text) || "false".equals(found.text))) {
                    return "true".equals(found.text);
                }
                if (column.coerce && found.json == Json.STRING) {
                    throw new Invalid(field + " is a JSON string that is not true or false, declared BOOLEAN");
                }
                throw wrongJson(column, found.json);
            case INT:
            case BIGINT:
            case DOUBLE:
            case DECIMAL:
                return number(column, numberText(column, found));
            case DATE:
                if (found.json != Json.STRING) {
                    throw wrongJson(column, found.json);
                }
                return date(column, found.text);
            case TIMESTAMP:
                if (found.json != Json.STRING) {
                    throw wrongJson(column, found.json);
                }
                return timestamp(column, found.text);
            default:
                throw new IllegalStateException(column.type);
        }
    }

    private static String numberText(EventSchema.Column column, Found found) throws Invalid {
        if (found.json == Json.NUMBER) {
            return found.text;
        }
        if (column.coerce && found.json == Json.STRING) {
            if (NUMBER.matcher(found.text).matches()) {
                return found.text;
            }
            throw new Invalid("field " + column.name + " is a JSON string that is not a number, declared " + column.type);
        }
        throw wrongJson(column, found.json);
    }

    private static Object number(EventSchema.Column column, String literal) throws Invalid {
        String field = "field " + column.name;
        boolean integer = literal.indexOf('.') < 0 && literal.indexOf('e') < 0 && literal.indexOf('E') < 0;
        switch (column.kind) {
            case INT:
            case BIGINT:
                if (!integer) {
                    throw new Invalid(field + " is a JSON number with a fraction or exponent, declared " + column.type);
                }
                int bits = column.kind == EventSchema.Kind.INT ? 31 : 63;
                BigInteger big = literal.length() > 40 ? null : new BigInteger(literal);
                if (big == null || big.bitLength() > bits) {
                    throw new Invalid(field + " is out of range for " + column.type);
                }
                return column.kind == EventSchema.Kind.INT ? (Object) big.intValue() : (Object) big.longValue();
            case DOUBLE:
                double d = Double.parseDouble(literal);
                if (Double.isInfinite(d)) {
                    throw new Invalid(field + " is out of range for DOUBLE");
                }
                return d;
            case DECIMAL:
                BigDecimal exact;
                try {
                    exact = new BigDecimal(literal).stripTrailingZeros();
                } catch (NumberFormatException | ArithmeticException e) {
                    throw new Invalid(field + " is out of range for " + column.type);
                }
                if (exact.scale() > column.scale) {
                    // checked before the range: a scale of a billion must not be set below
                    throw new Invalid(field + " has more than " + column.scale
                            + " digits after the decimal point, declared " + column.type);
                }
                if ((long) exact.precision() - exact.scale() > column.precision - column.scale) {
                    throw new Invalid(field + " is out of range for " + column.type);
                }
                BigDecimal scaled = exact.setScale(column.scale);
                if (scaled.unscaledValue().abs().compareTo(MAX_DECIMAL_UNSCALED) >= 0) {
                    throw new Invalid(field + " is out of range for " + column.type);
                }
                return scaled;
            default:
                throw new IllegalStateException(column.type);
        }
    }

    private static LocalDate date(EventSchema.Column column, String text) throws Invalid {
        Matcher m = DATE.matcher(text);
        try {
            if (m.matches()) {
                LocalDate date = LocalDate.of(
                        Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)));
                if (date.getYear() >= 1) {
                    return date;
                }
            }
        } catch (DateTimeException e) {
            // not a calendar date: below
        }
        throw new Invalid("field " + column.name + " is not a DATE (YYYY-MM-DD, years 1 to 9999)");
    }

    private static LocalDateTime timestamp(EventSchema.Column column, String text) throws Invalid {
        Matcher m = TIMESTAMP.matcher(text);
        try {
            if (m.matches()) {
                String fraction = m.group(7) == null ? "" : m.group(7).substring(1);
                int nanos = fraction.isEmpty() ? 0 : Integer.parseInt((fraction + "00").substring(0, 3)) * 1_000_000;
                LocalDateTime time = LocalDateTime.of(
                        Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                        Integer.parseInt(m.group(4)), Integer.parseInt(m.group(5)), Integer.parseInt(m.group(6)),
                        nanos);
                if (time.getYear() >= 1) {
                    return time;
                }
            }
        } catch (DateTimeException e) {
            // not a calendar time: below
        }
        throw new Invalid("field " + column.name
                + " is not a TIMESTAMP(3) (YYYY-MM-DD HH:MM:SS[.fff], T allowed for the space, no zone)");
    }

    /** A strict RFC 8259 reader of one JSON object that keeps only the declared fields. */
    private static final class Scanner {
        private final String s;
        private final EventSchema schema;
        private final Found[] found;
        private int pos;

        Scanner(String s, EventSchema schema, Found[] found) {
            this.s = s;
            this.schema = schema;
            this.found = found;
        }

        void document() throws Invalid {
            space();
            if (pos >= s.length() || s.charAt(pos) != '{') {
                throw new Invalid(NOT_OBJECT);
            }
            pos++;
            space();
            if (peek() == '}') {
                pos++;
            } else {
                while (true) {
                    space();
                    expect('"');
                    String key = string(null);
                    space();
                    expect(':');
                    space();
                    Integer column = schema.index.get(key);
                    if (column == null) {
                        skipValue(2);
                    } else {
                        Found field = new Found();
                        readValue(field);
                        if (found[column] != null) {
                            found[column].twice = true;
                        } else {
                            found[column] = field;
                        }
                    }
                    space();
                    char c = next();
                    if (c == '}') {
                        break;
                    }
                    if (c != ',') {
                        throw new Invalid(NOT_OBJECT);
                    }
                }
            }
            space();
            if (pos != s.length()) {
                throw new Invalid(NOT_OBJECT);
            }
        }

        private void readValue(Found field) throws Invalid {
            char c = peek();
            switch (c) {
                case '"':
                    pos++;
                    field.json = Json.STRING;
                    field.text = string(field);
                    return;
                case '{':
                    field.json = Json.OBJECT;
                    skipValue(2);
                    return;
                case '[':
                    field.json = Json.ARRAY;
                    skipValue(2);
                    return;
                case 't':
                    literal("true");
                    field.json = Json.TRUE;
                    field.text = "true";
                    return;
                case 'f':
                    literal("false");
                    field.json = Json.FALSE;
                    field.text = "false";
                    return;
                case 'n':
                    literal("null");
                    field.json = Json.NULL;
                    return;
                default:
                    field.json = Json.NUMBER;
                    field.text = number();
            }
        }

        /** Skips one value; a container it opens is at the given depth (the payload's object is 1). */
        private void skipValue(int depth) throws Invalid {
            char c = peek();
            switch (c) {
                case '"':
                    pos++;
                    string(null);
                    return;
                case 't':
                    literal("true");
                    return;
                case 'f':
                    literal("false");
                    return;
                case 'n':
                    literal("null");
                    return;
                case '{':
                case '[':
                    break;
                default:
                    number();
                    return;
            }
            if (depth > MAX_DEPTH) {
                throw new Invalid(TOO_DEEP);
            }
            char close = c == '{' ? '}' : ']';
            pos++;
            space();
            if (peek() == close) {
                pos++;
                return;
            }
            while (true) {
                space();
                if (close == '}') {
                    expect('"');
                    string(null);
                    space();
                    expect(':');
                    space();
                }
                skipValue(depth + 1);
                space();
                char n = next();
                if (n == close) {
                    return;
                }
                if (n != ',') {
                    throw new Invalid(NOT_OBJECT);
                }
            }
        }

        private String number() throws Invalid {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            if (peek() == '0') {
                pos++;
            } else if (digit(peek()) && peek() != '0') {
                digits();
            } else {
                throw new Invalid(NOT_OBJECT);
            }
            if (pos < s.length() && s.charAt(pos) == '.') {
                pos++;
                if (!digit(peek())) {
                    throw new Invalid(NOT_OBJECT);
                }
                digits();
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                pos++;
                if (peek() == '+' || peek() == '-') {
                    pos++;
                }
                if (!digit(peek())) {
                    throw new Invalid(NOT_OBJECT);
                }
                digits();
            }
            return s.substring(start, pos);
        }

        private void digits() {
            while (pos < s.length() && digit(s.charAt(pos))) {
                pos++;
            }
        }

        private static boolean digit(char c) {
            return c >= '0' && c <= '9';
        }

        /** A string's text after its opening quote; marks a lone surrogate escape in field. */
        private String string(Found field) throws Invalid {
            StringBuilder out = null;
            int start = pos;
            while (true) {
                if (pos >= s.length()) {
                    throw new Invalid(NOT_OBJECT);
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    String text = out == null ? s.substring(start, pos) : out.append(s, start, pos).toString();
                    pos++;
                    return text;
                }
                if (c < 0x20) {
                    throw new Invalid(NOT_OBJECT);  // a raw control character is not JSON
                }
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (out == null) {
                    out = new StringBuilder();
                }
                out.append(s, start, pos);
                pos++;
                char e = next();
                switch (e) {
                    case '"': out.append('"'); break;
                    case '\\': out.append('\\'); break;
                    case '/': out.append('/'); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        char unit = hex4();
                        if (Character.isHighSurrogate(unit) && s.startsWith("\\u", pos)) {
                            int mark = pos;
                            pos += 2;
                            char low = hex4();
                            if (Character.isLowSurrogate(low)) {
                                out.append(unit).append(low);
                                break;
                            }
                            pos = mark;  // the next escape is read on its own
                        }
                        if (Character.isSurrogate(unit) && field != null) {
                            field.loneSurrogate = true;
                        }
                        out.append(unit);
                        break;
                    default:
                        throw new Invalid(NOT_OBJECT);
                }
                start = pos;
            }
        }

        private char hex4() throws Invalid {
            if (pos + 4 > s.length()) {
                throw new Invalid(NOT_OBJECT);
            }
            int value = 0;
            for (int i = 0; i < 4; i++) {
                int d = Character.digit(s.charAt(pos + i), 16);
                if (d < 0) {
                    throw new Invalid(NOT_OBJECT);
                }
                value = value * 16 + d;
            }
            pos += 4;
            return (char) value;
        }

        private void literal(String word) throws Invalid {
            if (!s.startsWith(word, pos)) {
                throw new Invalid(NOT_OBJECT);
            }
            pos += word.length();
        }

        private void space() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        private char peek() throws Invalid {
            if (pos >= s.length()) {
                throw new Invalid(NOT_OBJECT);
            }
            return s.charAt(pos);
        }

        private char next() throws Invalid {
            char c = peek();
            pos++;
            return c;
        }

        private void expect(char c) throws Invalid {
            if (next() != c) {
                throw new Invalid(NOT_OBJECT);
            }
        }
    }
}
