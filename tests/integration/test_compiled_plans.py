"""Compiled plans with content ids, on the real SQL Gateway (issue 26, point 1).

Flink numbers a compiled plan's nodes from a counter of the gateway's JVM, so the same
SQL compiled twice gets other operator ids. kappa_orch's canonical plan does not: the
same job compiles to the same plan, and an operator's id changes exactly when something
upstream of it changes (a filter added before the aggregate gives the aggregate a new
id, so its state could never be restored into it; a change after the aggregate keeps
it). A deployed version's job runs from its plan, kept in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import JobTarget
from kappa_orch.lifecycle.change import change_of
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import Change
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import isolated_platform, produce_authorizations, run_reprocess
from tests.integration.served import cli, expected, versions, wait_exact

pytestmark = pytest.mark.integration

AGGREGATE = "SUM(amount_cents) AS spend_cents"


def test_a_version_runs_its_canonical_plan_and_ids_follow_what_is_upstream(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    assert flink.plan_dir, "the local stack keeps compiled plans"
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        produce_authorizations(platform, kafka, sample_events(3_000).authorizations, event_timestamps=True)
        pipeline = platform.pipelines()["daily_spend"]
        assert run_reprocess(platform, pipeline, kafka, flink).success
        wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))
        [v1] = versions(platform, "daily_spend").values()
        with registry.session(platform.warehouse) as conn:
            stored = registry.version_plan(conn, "daily_spend", 1)
        assert stored is not None and stored.stateful  # the aggregate and the input counts
        # the job was started from the stored plan (EXECUTE PLAN of its file)
        assert v1.flink_job_id and '"table.exec.uid.format":"k' in stored.document
        assert any(f.read_text() == stored.document for f in Path(flink.plan_dir).glob("*.json"))

        def compiled(sql: str, label: int) -> tuple[str, frozenset[str]]:
            """The plan of v1 with this SQL, for another table and consumer group."""
            changed = platform.set_sql("daily_spend", sql)
            jdbc = {"url": "jdbc:postgresql://127.0.0.1:5432/scratch"}  # compiled, never run
            target = JobTarget(
                f"daily_spend__scratch{label}", f"g-scratch-{label}", kafka.bootstrap_servers, jdbc
            )
            plan = flink.compile_job(flink.version_job(changed, 1, target))
            assert plan is not None
            return plan.fingerprint, frozenset(plan.stateful)

        sql = pipeline.sql_text
        # compiled again in the same gateway JVM (another table and consumer group): the
        # same plan, the same ids (the input counts' key holds the version: compared as v1)
        again, again_stateful = compiled(sql, 4)
        assert (again, again_stateful) == (stored.fingerprint, frozenset(stored.stateful))
        # a filter before the aggregate: the aggregate's id changes (its state would mean
        # something else), the sources' and the dead-letter branch's do not
        before = sql.replace("WHERE status = 'approved'", "WHERE status = 'approved' AND amount_cents > 100")
        _, filtered = compiled(before, 2)
        assert filtered != again_stateful and filtered & again_stateful
        # a change after the aggregate keeps every stateful id
        after, projected = compiled(sql.replace(AGGREGATE, "SUM(amount_cents) * 2 AS spend_cents"), 3)
        assert projected == again_stateful and after != again
        # Flink writes only a temporary table's name into the plan: a source moved to
        # another topic must still be another source (found: it kept its ids, offsets of the
        # old topic would have been restored into the new one)
        source = pipeline.spec.sources[0]
        moved_source = source.model_copy(update={"topic": f"{source.topic}.moved"})
        moved = pipeline.model_copy(
            update={"spec": pipeline.spec.model_copy(update={"sources": [moved_source]})}
        )
        jdbc = {"url": "jdbc:postgresql://127.0.0.1:5432/scratch"}
        target = JobTarget("daily_spend__scratch5", "g-scratch-5", kafka.bootstrap_servers, jdbc)
        other_topic = flink.compile_job(flink.version_job(moved, 1, target))
        assert other_topic is not None and set(other_topic.stateful).isdisjoint(stored.stateful)

        # issue 26, point 2: the class of a change, from v1's stored plan and the spec's own
        services = Services(kafka, flink, platform.warehouse)

        def change(edited: str) -> Change:
            return change_of(platform.set_sql("daily_spend", edited), v1, services, 3_000)

        refactored = change(sql.replace("COUNT(*)", "COUNT(1)"))
        assert refactored.kind == "same_plan", refactored.reasons
        doubled = change(sql.replace(AGGREGATE, "SUM(amount_cents) * 2 AS spend_cents"))
        assert doubled.kind == "state_compatible", doubled.reasons
        assert doubled.derivation == {
            "account": "account",
            "spend_day": "spend_day",
            "authorizations": "authorizations",
            "spend_cents": None,  # computed anew from the live columns
        }
        # computed anew from the live rows by a bounded Flink job: no replay
        assert doubled.applied == "savepoint" and doubled.events_to_read == 0
        assert list(doubled.expressions) == ["spend_cents"] and doubled.conditions == []
        filtered = change(before)
        assert filtered.kind == "breaking" and filtered.events_to_read == 3_000
        assert any(r.startswith("new state: stream-exec-global-group-aggregate") for r in filtered.reasons)
        # and `plan` says it, with what a reprocess does with it today
        platform.set_sql("daily_spend", sql.replace(AGGREGATE, "SUM(amount_cents) * 2 AS spend_cents"))
        code, out = cli(platform, stack, "plan")
        assert code == 0 and "change: state_compatible (a reprocess makes it with a start from" in out, out
        assert "derived by a bounded Flink job: computed columns spend_cents; 0 filter(s)" in out, out
