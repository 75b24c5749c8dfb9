"""`stack up` on bad input: a jar Maven cannot resolve, a broker that dies on start."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa_orch.errors import StackError
from kappa_orch.stack import manager
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.jars import JarBundle, resolve
from kappa_orch.stack.kafka import KafkaService

pytestmark = pytest.mark.integration

_BAD_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.kappa-orch.test</groupId>
  <artifactId>bad</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.flink</groupId>
      <artifactId>flink-sql-connector-kafka</artifactId>
      <version>0.0.0-no-such-version</version>
    </dependency>
  </dependencies>
</project>
"""


def test_unresolvable_jar_names_the_bundle_and_leaves_nothing(tmp_path: Path) -> None:
    pom = tmp_path / "bad.pom.xml"
    pom.write_text(_BAD_POM)
    with pytest.raises(StackError) as error:
        resolve(JarBundle("bad", pom, transitive=False), tmp_path / "jars")
    assert "Maven could not resolve the bad jars" in error.value.problem
    assert "0.0.0-no-such-version" in error.value.problem
    assert "Maven Central" in (error.value.fix or "")
    assert list((tmp_path / "jars").iterdir()) == []


def test_broker_that_dies_on_start_is_reported_with_its_log(stack: StackConfig, tmp_path: Path) -> None:
    # a second stack on free ports, sharing the resolved jars, whose storage was
    # formatted for another cluster: the broker exits during start-up
    config = StackConfig(home=tmp_path / "stack", kafka_port=19092, kafka_controller_port=19093)
    config.home.mkdir()
    (config.home / "jars").symlink_to(stack.jars_dir)
    data = config.kafka_dir / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n")
    kafka = KafkaService(config)
    with pytest.raises(StackError) as error:
        manager.up(config, report=lambda _: None, only=[kafka])
    assert "Kafka exited during start-up" in error.value.problem
    assert str(config.logs_dir / "kafka.log") in error.value.problem
    assert kafka.live_pids() == {}
