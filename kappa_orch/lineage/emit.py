"""Sending OpenLineage events without ever holding up a run.

The transport comes from the deployment's configuration (`openlineage`, KAPPA_OPENLINEAGE):

    http://host:port[/path]   an HTTP consumer (Marquez, DataHub; path default api/v1/lineage)
    file:/path/events.jsonl   one JSON event per line, appended
    console                   logged
    kafka://host:port/topic   a Kafka topic
    none                      off

Default: `file:` <home>/openlineage/events.jsonl. Events go to a bounded queue that one
background thread drains; each is tried a bounded number of times (with backoff) and, if
the consumer is down, slow or rejects it, dropped with a warning that names the pipeline
and the reason. A full queue drops the new event (warned). At exit the process waits a
bounded time for what is queued."""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from kappa_orch.errors import SpecError
from kappa_orch.lineage.events import Names, ParentRun, run_uuid

LOG = logging.getLogger("kappa_orch.openlineage")


def transport_config(setting: str, *, home: Path) -> dict[str, Any] | None:
    """The openlineage-python transport configuration of an `openlineage` setting (None: off)."""
    text = setting.strip()
    if text in ("", "none", "off"):
        return None
    if text == "console":
        return {"type": "console"}
    parts = urlsplit(text)
    if parts.scheme == "file":
        path = Path(parts.path) if parts.path.startswith("/") else home / parts.path
        return {"type": "file", "log_file_path": str(path), "append": True}
    if parts.scheme in ("http", "https") and parts.netloc:
        return {
            "type": "http",
            "url": f"{parts.scheme}://{parts.netloc}",
            "endpoint": parts.path.lstrip("/") or "api/v1/lineage",
            "timeout": 5.0,
            "retry": {"total": 0},
        }
    if parts.scheme == "kafka" and parts.netloc and parts.path.strip("/"):
        return {
            "type": "kafka",
            "topic": parts.path.strip("/"),
            "config": {"bootstrap.servers": parts.netloc, "message.timeout.ms": "10000", "log_level": "0"},
            "flush": True,
        }
    raise SpecError(
        f"openlineage setting {setting!r} is not a transport",
        "use http://host:port[/path], file:/path/events.jsonl, console, kafka://host:port/topic or none "
        "(KAPPA_OPENLINEAGE)",
    )


def make_transport(config: dict[str, Any]) -> Any:
    """openlineage-python's transport for a configuration; Kafka's made to raise when the
    broker does not take an event (the library's only logs it), so it is retried and warned."""
    from openlineage.client.transport import get_default_factory
    from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

    class CheckedKafkaTransport(KafkaTransport):
        def emit(self, event: Any) -> None:
            from openlineage.client.serde import Serde

            if self.producer is None:
                self._setup_producer(self.kafka_config.config)
            producer = self.producer
            assert producer is not None
            failed: list[str] = []
            producer.produce(
                topic=self.topic,
                key=self.message_key or self._get_message_key(event),
                value=Serde.to_json(event).encode("utf-8"),
                on_delivery=lambda error, _message: failed.append(str(error)) if error else None,
            )
            left = producer.flush(timeout=30)
            if failed or left:
                raise ConnectionError(f"Kafka did not take the event: {failed[0] if failed else 'timed out'}")

    if config["type"] == "kafka":
        return CheckedKafkaTransport(KafkaConfig.from_dict(dict(config)))
    return get_default_factory().create(config)


def _describe(exc: BaseException) -> tuple[str, bool]:
    """(why an event was not delivered, whether trying again may help): a consumer that
    answered with an HTTP error status has rejected the event, trying again would not."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return f"the consumer rejected it (HTTP {status}: {str(getattr(response, 'text', ''))[:200]})", False
    return f"{type(exc).__name__}: {exc}"[:300], True


@dataclass
class _Item:
    event: Any
    pipeline: str


class Retry(NamedTuple):
    """How often an event is tried, waiting backoff_s, then twice that, ... in between."""

    attempts: int = 3
    backoff_s: float = 0.5


RETRY = Retry()


class Emitter:
    """Sends events on a background thread: bounded queue, bounded retry, never raises."""

    QUEUE_SIZE = 1000  # events waiting to be sent; a new one beyond is dropped (warned)

    def __init__(
        self,
        transport: Any,
        names: Names,
        *,
        retry: Retry = RETRY,
        warn: Callable[[str], None] = LOG.warning,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.transport, self.names, self.config = transport, names, config
        self.attempts, self.backoff_s, self.warn = retry.attempts, retry.backoff_s, warn
        self.queue: queue.Queue[_Item | None] = queue.Queue(maxsize=self.QUEUE_SIZE)
        self.sent = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._drain, name="kappa-openlineage", daemon=True)
        self._thread.start()

    def emit(self, event: Any, pipeline: str) -> None:
        """Queue an event (returns at once)."""
        try:
            self.queue.put_nowait(_Item(event, pipeline))
        except queue.Full:
            self.dropped += 1
            self.warn(f"OpenLineage: {pipeline}: event dropped, {self.queue.maxsize} are waiting to be sent")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait at most `timeout_s` for the queued events; True when all were handled."""
        deadline = time.monotonic() + timeout_s
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.queue.unfinished_tasks

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (waiting at most `timeout_s`), then end the thread."""
        self.flush(timeout_s)
        self.queue.put(None)

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:  # closed
                self.queue.task_done()
                return
            try:
                self._send(item)
            except Exception as exc:  # the thread outlives any one event
                self.dropped += 1
                self.warn(f"OpenLineage: {item.pipeline}: event not sent ({exc!r})")
            finally:
                self.queue.task_done()

    def _send(self, item: _Item) -> None:
        state = getattr(item.event, "eventType", None)
        job = f"{item.event.job.name} {state.value if state else 'JOB'}"
        for attempt in range(self.attempts):
            try:
                self.transport.emit(item.event)
                self.sent += 1
                return
            except Exception as exc:  # a consumer's failure never reaches the run
                reason, retry = _describe(exc)
                if attempt + 1 < self.attempts and retry:
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                self.dropped += 1
                self.warn(
                    f"OpenLineage: {item.pipeline}: event {job} not delivered after {attempt + 1} "
                    f"attempt(s): {reason}; the run goes on"
                )
                return


# one emitter (one queue, one sending thread) per destination and names in a process,
# however many resources or commands ask for it
_EMITTERS: dict[str, Emitter] = {}
# the run whose work is being done (job name, run id): a Dagster run (`within`), or the
# CLI command this process is (`cli_command`)
_PARENT: ContextVar[tuple[str, str] | None] = ContextVar("kappa_openlineage_parent", default=None)


def emitter_for(
    setting: str, names: Names, *, home: Path, warn: Callable[[str], None] = LOG.warning
) -> Emitter | None:
    """The emitter of an `openlineage` setting (None: off), with dataset `names`."""
    from kappa_orch.lineage.events import PRODUCER

    config = transport_config(setting, home=home)
    if config is None:
        return None
    key = repr((sorted(config.items()), names))
    emitter = _EMITTERS.get(key)
    if emitter is None:
        if config["type"] == "file":
            Path(config["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)
        from openlineage.client.event_v2 import set_producer

        set_producer(PRODUCER)
        emitter = _EMITTERS[key] = Emitter(make_transport(config), names, warn=warn, config=config)
    emitter.warn = warn
    return emitter


def emitter_of(platform: Any, *, warn: Callable[[str], None] = LOG.warning) -> Emitter | None:
    """The emitter of a PlatformConfig (its `openlineage` setting and dataset names)."""
    names = Names.of(
        deployment=platform.deployment,
        bootstrap=platform.kafka_bootstrap,
        warehouse_url=platform.warehouse_url,
    )
    return emitter_for(platform.openlineage, names, home=Path(platform.home), warn=warn)


def parent(emitter: Emitter) -> ParentRun | None:
    """The run whose work is being done: a Dagster run, else this CLI command."""
    found = _PARENT.get()
    return ParentRun(emitter.names.namespace, found[0], found[1]) if found else None


@contextlib.contextmanager
def within(run_id: str, job: str) -> Iterator[None]:
    """Events emitted inside name this Dagster run (job `job`) as their parent."""
    token = _PARENT.set((f"dagster.{job}", run_uuid(run_id)))
    try:
        yield
    finally:
        _PARENT.reset(token)


def cli_command(command: str) -> None:
    """This process is the CLI command `command`: its events' parent."""
    _PARENT.set((f"cli.{command}", run_uuid()))


def flush(timeout_s: float = 10.0) -> bool:
    """Wait at most `timeout_s` for what every emitter of this process has queued; True
    when all was handled."""
    deadline = time.monotonic() + timeout_s
    return all(e.flush(max(0.0, deadline - time.monotonic())) for e in list(_EMITTERS.values()))


atexit.register(flush)
