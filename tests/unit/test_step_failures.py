"""An expected failure inside a Dagster run is a `dagster.Failure`: the problem, the fix
and whose fault it is, with no stack trace for the UI to show; the CLI reads it back."""

from __future__ import annotations

from dagster import DagsterInstance, asset, materialize

from kappa_orch.cli.operate import step_errors
from kappa_orch.dagster.runs import kappa_step
from kappa_orch.errors import INFRASTRUCTURE, SPEC, ServiceUnavailable, SpecError


def _run(error: Exception) -> object:
    @asset
    def failing(context) -> None:  # type: ignore[no-untyped-def]  # Dagster reads the bare name
        with kappa_step(context):
            raise error

    return materialize([failing], instance=DagsterInstance.ephemeral(), raise_on_error=False)


def test_a_kappa_error_fails_the_step_with_its_fix_and_no_stack_trace() -> None:
    result = _run(SpecError("daily_spend: column 'amount' is not in the SELECT", "add it to the SELECT"))
    [failure] = [e for e in result.all_events if e.is_step_failure]  # type: ignore[attr-defined]
    data = failure.step_failure_data
    assert data.user_failure_data.description == (
        "daily_spend: column 'amount' is not in the SELECT\n  fix: add it to the SELECT"
    )
    assert "fix: add it to the SELECT" in str(data.error)  # what a run's event log shows
    metadata = {k: v.value for k, v in data.user_failure_data.metadata.items()}
    assert metadata == {"fix": "add it to the SELECT", "fault": SPEC, "kappa_error": "SpecError"}
    assert data.error.cls_name == "Failure" and data.error.cause is None and data.error.context is None
    [error] = step_errors(result)
    assert (error.problem, error.fix, error.blame) == (
        "daily_spend: column 'amount' is not in the SELECT",
        "add it to the SELECT",
        SPEC,
    )


def test_an_infrastructure_fault_keeps_its_blame_and_any_other_error_is_left_as_it_is() -> None:
    [error] = step_errors(_run(ServiceUnavailable("Flink did not answer", "kappa-orch stack up")))
    assert (error.problem, error.fix, error.blame) == (
        "Flink did not answer",
        "kappa-orch stack up",
        INFRASTRUCTURE,
    )
    result = _run(ZeroDivisionError("a bug"))
    [failure] = [e for e in result.all_events if e.is_step_failure]  # type: ignore[attr-defined]
    assert failure.step_failure_data.user_failure_data is None  # a bug keeps its stack trace
    [error] = step_errors(result)
    assert "ZeroDivisionError" in error.problem


def test_a_service_error_is_told_as_the_cli_has_always_told_it() -> None:
    # found (CI): the step said "the Flink REST API at ... did not answer (GET ...)" where the
    # CLI had always said "error (infrastructure): Flink did not answer: ..."
    import requests

    def unreachable() -> Exception:
        try:
            try:
                raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9)")
            except requests.RequestException as exc:
                raise ServiceUnavailable("the Flink REST API at http://127.0.0.1:9 did not answer") from exc
        except ServiceUnavailable as error:
            return error

    [error] = step_errors(_run(unreachable()))
    assert error.problem == "Flink did not answer: HTTPConnectionPool(host='127.0.0.1', port=9)"
    assert error.blame == INFRASTRUCTURE and "KAPPA_FLINK_REST_URL" in (error.fix or "")
