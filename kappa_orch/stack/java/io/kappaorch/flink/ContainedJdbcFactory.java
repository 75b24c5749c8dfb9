package io.kappaorch.flink;

import java.util.Set;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.connector.jdbc.core.table.JdbcDynamicTableFactory;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.factories.DynamicTableSinkFactory;

/**
 * The connector {@code kappa-jdbc}: Flink's JDBC sink ({@code jdbc}, same options, same
 * behaviour) whose failure stays in its own job.
 *
 * <p>Flink's JDBC sink flushes again when it is closed, and throws when that flush fails. When
 * the task is already failing (a write the database refused: a permission, a constraint, a
 * lost connection), that second exception is thrown from the task's exception handler, which
 * Flink treats as fatal: the TaskManager exits and every job on it dies. Found: one job's
 * {@code permission denied for table input_counts} took every other pipeline's live job down.
 * The wrapper ({@link ContainedSinkFunction}) logs the exception of closing a task that did
 * not finish normally (it is failing already, with its own cause) instead of throwing it.
 */
public final class ContainedJdbcFactory implements DynamicTableSinkFactory {

    public static final String IDENTIFIER = "kappa-jdbc";

    private final JdbcDynamicTableFactory jdbc = new JdbcDynamicTableFactory();

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return jdbc.requiredOptions();
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return jdbc.optionalOptions();
    }

    @Override
    public Set<ConfigOption<?>> forwardOptions() {
        return jdbc.forwardOptions();
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        return new ContainedSink(jdbc.createDynamicTableSink(context));
    }
}
