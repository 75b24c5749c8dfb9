package io.kappaorch.flink;

import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.InputTypeConfigurable;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.RichSinkFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.SinkFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Delegates every call to the wrapped sink function. A task that ends normally calls
 * {@code finish()} before {@code close()}: there, a failing close still throws (a bounded
 * job's last flush is never lost silently). A task closed without finishing is failing or
 * cancelled: an exception from {@code close()} is logged instead of thrown, so that it is not
 * raised from the task's exception handler, which is fatal to the TaskManager.
 */
final class ContainedSinkFunction<T> extends RichSinkFunction<T>
        implements CheckpointedFunction, InputTypeConfigurable {

    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(ContainedSinkFunction.class);

    private final SinkFunction<T> inner;
    private transient boolean finished;

    ContainedSinkFunction(SinkFunction<T> inner) {
        this.inner = inner;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        if (inner instanceof RichFunction) {
            ((RichFunction) inner).setRuntimeContext(getRuntimeContext());
        }
        if (inner instanceof RichFunction) {
            ((RichFunction) inner).open(openContext);
        }
    }

    @Override
    public void invoke(T value, Context context) throws Exception {
        inner.invoke(value, context);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        if (inner instanceof CheckpointedFunction) {
            ((CheckpointedFunction) inner).snapshotState(context);
        }
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        if (inner instanceof CheckpointedFunction) {
            ((CheckpointedFunction) inner).initializeState(context);
        }
    }

    @Override
    public void finish() throws Exception {
        inner.finish();
        finished = true;
    }

    @Override
    public void close() throws Exception {
        if (!(inner instanceof RichFunction)) {
            return;
        }
        try {
            ((RichFunction) inner).close();
        } catch (Exception e) {
            if (finished) {
                throw e;
            }
            // the task fails (or is cancelled) already, with its own cause
            LOG.warn("closing the JDBC sink of a failing task failed too (kept in this job)", e);
        }
    }

    @Override
    public void setInputType(TypeInformation<?> type, ExecutionConfig executionConfig) {
        if (inner instanceof InputTypeConfigurable) {
            ((InputTypeConfigurable) inner).setInputType(type, executionConfig);
        }
    }
}
