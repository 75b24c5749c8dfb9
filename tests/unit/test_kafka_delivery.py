"""A producer's delivery reports: a record the brokers did not confirm is never called lost."""

from confluent_kafka import KafkaError

from kappa_orch.resources.kafka_delivery import Deliveries


def test_unacknowledged_records_are_called_unconfirmed_never_lost() -> None:
    deliveries = Deliveries()
    deliveries.on_delivery(None, object())  # acknowledged: not a failure
    deliveries.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), object())
    deliveries.on_delivery(KafkaError(KafkaError._PURGE_INFLIGHT), object())
    deliveries.on_delivery(KafkaError(KafkaError._PURGE_QUEUE), object())
    error = deliveries.error("events", 4, pending=2)
    assert error.problem.startswith("3 of 4 records to 'events' were not acknowledged by the brokers")
    assert "Kafka may still write some of them" in error.problem
    assert "lost" not in error.problem and "stack status" in (error.fix or "")


def test_records_still_pending_count_even_without_a_report() -> None:
    error = Deliveries().error("events", 10, pending=2)
    assert error.problem.startswith("2 of 10 records") and "may still write" in error.problem
