package io.kappaorch.flink;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.CallContext;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.types.Row;

/**
 * {@code KAPPA_PARSE(payload_bytes, kafka_timestamp, '<schema>')}: one event parsed once,
 * as {@code ROW<kappa_reason STRING, kappa_v_<column> <type>, ...>}: the reason is NULL
 * and every column set for a valid event, else the reason and no values (EventParser).
 */
public final class ParseEvent extends ScalarFunction {
    public Row eval(byte[] payload, Instant kafkaTimestamp, String schema) {
        EventSchema parsed = EventSchema.of(schema);
        EventParser.Result result = EventParser.parse(
                payload, kafkaTimestamp == null ? null : kafkaTimestamp.toEpochMilli(), parsed);
        Row row = new Row(1 + parsed.columns.size());
        row.setField(0, result.reason);
        if (result.values != null) {
            for (int i = 0; i < result.values.length; i++) {
                row.setField(i + 1, result.values[i]);
            }
        }
        return row;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .typedArguments(arguments())
                .outputTypeStrategy(ParseEvent::rowType)
                .build();
    }

    static List<DataType> arguments() {
        List<DataType> arguments = new ArrayList<>();
        arguments.add(DataTypes.BYTES());
        arguments.add(DataTypes.TIMESTAMP_LTZ(3).bridgedTo(Instant.class));
        arguments.add(DataTypes.STRING());
        return arguments;
    }

    static EventSchema schema(CallContext context) {
        Optional<String> text = context.getArgumentValue(2, String.class);
        if (!text.isPresent()) {
            throw context.newValidationError("the schema argument must be a string literal");
        }
        try {
            return EventSchema.of(text.get());
        } catch (IllegalArgumentException e) {
            throw context.newValidationError("bad schema: %s", e.getMessage());
        }
    }

    private static Optional<DataType> rowType(CallContext context) {
        EventSchema schema = schema(context);
        List<DataTypes.Field> fields = new ArrayList<>();
        fields.add(DataTypes.FIELD("kappa_reason", DataTypes.STRING()));
        for (EventSchema.Column column : schema.columns) {
            fields.add(DataTypes.FIELD("kappa_v_" + column.name, dataType(column)));
        }
        return Optional.of(DataTypes.ROW(fields.toArray(new DataTypes.Field[0])));
    }

    static DataType dataType(EventSchema.Column column) {
        switch (column.kind) {
            case STRING: return DataTypes.STRING();
            case BOOLEAN: return DataTypes.BOOLEAN().bridgedTo(Boolean.class);
            case INT: return DataTypes.INT().bridgedTo(Integer.class);
            case BIGINT: return DataTypes.BIGINT().bridgedTo(Long.class);
            case DOUBLE: return DataTypes.DOUBLE().bridgedTo(Double.class);
            case DECIMAL: return DataTypes.DECIMAL(column.precision, column.scale).bridgedTo(BigDecimal.class);
            case DATE: return DataTypes.DATE().bridgedTo(LocalDate.class);
            case TIMESTAMP: return DataTypes.TIMESTAMP(3).bridgedTo(LocalDateTime.class);
            default: throw new IllegalStateException(column.type);
        }
    }
}
