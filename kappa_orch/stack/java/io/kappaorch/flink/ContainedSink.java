package io.kappaorch.flink;

import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.legacy.SinkFunctionProvider;

/** A table sink whose sink function's failure stays in its job (see ContainedJdbcFactory). */
final class ContainedSink implements DynamicTableSink {

    private final DynamicTableSink inner;

    ContainedSink(DynamicTableSink inner) {
        this.inner = inner;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
        return inner.getChangelogMode(requestedMode);
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
        SinkRuntimeProvider provider = inner.getSinkRuntimeProvider(context);
        if (!(provider instanceof SinkFunctionProvider)) {
            throw new IllegalStateException(
                    "kappa-jdbc wraps the JDBC connector's sink function, and this connector version "
                            + "provides " + provider.getClass().getName());
        }
        SinkFunctionProvider functions = (SinkFunctionProvider) provider;
        return SinkFunctionProvider.of(
                new ContainedSinkFunction<>(functions.createSinkFunction()),
                functions.getParallelism().orElse(null));
    }

    @Override
    public DynamicTableSink copy() {
        return new ContainedSink(inner.copy());
    }

    @Override
    public String asSummaryString() {
        return "kappa-jdbc(" + inner.asSummaryString() + ")";
    }
}
