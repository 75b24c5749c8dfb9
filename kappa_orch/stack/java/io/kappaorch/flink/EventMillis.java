package io.kappaorch.flink;

import java.time.Instant;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.inference.TypeStrategies;

/**
 * {@code KAPPA_EVENT_MILLIS(payload_bytes, kafka_timestamp, '<schema>')}: a valid event's
 * time in epoch milliseconds, NULL for every event that will be dead-lettered, so that
 * only valid events move the watermark (Flink's watermark generator skips NULLs).
 */
public final class EventMillis extends ScalarFunction {
    public Long eval(byte[] payload, Instant kafkaTimestamp, String schema) {
        EventParser.Result result = EventParser.parse(
                payload, kafkaTimestamp == null ? null : kafkaTimestamp.toEpochMilli(), EventSchema.of(schema));
        return result.eventMillis;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .typedArguments(ParseEvent.arguments())
                .outputTypeStrategy(TypeStrategies.explicit(DataTypes.BIGINT().bridgedTo(Long.class)))
                .build();
    }
}
