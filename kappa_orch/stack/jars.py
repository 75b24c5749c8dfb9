"""Jars from Maven Central, resolved once per pom into the stack's cache folder."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kappa_orch.errors import StackError


@dataclass(frozen=True)
class JarBundle:
    """One pom and how its dependencies are copied."""

    name: str
    pom: Path
    transitive: bool


def _pom(name: str) -> Path:
    return Path(str(resources.files("kappa_orch.stack") / "maven" / name))


KAFKA_BROKER = JarBundle("kafka", _pom("kafka-broker.pom.xml"), transitive=True)
FLINK_EXTRAS = JarBundle("flink", _pom("flink.pom.xml"), transitive=False)
# the Flink Kubernetes Operator's CRDs, for `kappa-orch k8s validate`
K8S_SCHEMAS = JarBundle("k8s", _pom("k8s.pom.xml"), transitive=False)
# Flink's S3 filesystem plugin, for checkpoints on object storage
FLINK_S3 = JarBundle("flink-s3", _pom("flink-s3.pom.xml"), transitive=False)
BUNDLES = (KAFKA_BROKER, FLINK_EXTRAS, K8S_SCHEMAS, FLINK_S3)


def require_tool(tool: str, package: str) -> str:
    """Path of an executable, or a StackError that says how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise StackError(
            f"`{tool}` was not found on PATH; the local stack needs it.",
            f"install it (Debian/Ubuntu: `apt-get install -y {package}`) "
            "or run scripts/bootstrap.sh, which does",
        )
    return path


def resolve(bundle: JarBundle, jars_dir: Path) -> Path:
    """Copy the bundle's jars into jars_dir/<name>/ unless already done for this pom."""
    target = jars_dir / bundle.name
    pom = bundle.pom
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    stamp = target / ".resolved"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return target

    mvn = require_tool("mvn", "maven")
    require_tool("java", "openjdk-17-jre-headless")
    staging = jars_dir / f".{bundle.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    if not bundle.transitive:
        argv.append("-DexcludeTransitive=true")
    print(f"resolving {bundle.name} jars from Maven Central ({pom.name}) ...", flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise StackError(
            f"Maven could not resolve the {bundle.name} jars from {pom}:\n{output}",
            "check that Maven Central is reachable (`mvn -v`, proxy settings in "
            "~/.m2/settings.xml) and that the versions in the pom exist",
        )
    # swap in the complete set only, so an interrupted resolve is never used
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    stamp.write_text(digest + "\n")
    return target


def resolve_all(jars_dir: Path) -> dict[str, Path]:
    resolved = {bundle.name: resolve(bundle, jars_dir) for bundle in BUNDLES}
    resolved[KAPPA_JAR] = build_kappa_jar(jars_dir)
    return resolved


def flink_home() -> Path:
    """The Flink distribution inside the installed pyflink package."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "pyflink is not installed, so there is no Flink distribution to run",
            "install the local stack's extra: pip install 'kappa-orch[stack]' (it pins apache-flink)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


# kappa_orch's own classes for the Flink cluster (kappa_orch/stack/java): pgjdbc's
# authentication plugin that derives a job role's password from KAPPA_JOB_KEY, and the
# functions that parse each event (KAPPA_PARSE), compiled here against the driver the
# flink pom resolves and the Flink distribution of the pyflink wheel
KAPPA_JAR = "kappa-flink"
KAPPA_JAR_FILE = "kappa-flink.jar"
JOB_PASSWORD_CLASS = "io.kappaorch.jdbc.JobPassword"


TABLE_FACTORY = "org.apache.flink.table.factories.Factory"
TABLE_FACTORIES = ("io.kappaorch.flink.ContainedJdbcFactory",)


def build_kappa_jar(jars_dir: Path) -> Path:
    """Compile kappa_orch's Java classes into jars_dir/kappa-flink/kappa-flink.jar unless
    already built from this source; its folder."""
    import tempfile
    import zipfile

    root = Path(str(resources.files("kappa_orch.stack") / "java"))
    sources = sorted(root.rglob("*.java"))
    material = b"".join(s.read_bytes() for s in sources) + "\n".join(TABLE_FACTORIES).encode()
    digest = hashlib.sha256(material).hexdigest()[:16]
    target = jars_dir / KAPPA_JAR
    stamp = target / ".built"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return target
    javac = require_tool("javac", "openjdk-17-jdk-headless")
    extras = resolve(FLINK_EXTRAS, jars_dir)
    driver = sorted(extras.glob("postgresql-*.jar"))
    jdbc = [str(j) for j in sorted(extras.glob("flink-connector-jdbc-*.jar"))]  # kappa-jdbc wraps it
    classpath = os.pathsep.join([str(driver[0]), *jdbc, str(flink_home() / "lib" / "*")])
    with tempfile.TemporaryDirectory() as classes:
        argv = [javac, "--release", "11", "-nowarn", "-cp", classpath, "-d", classes, *map(str, sources)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"javac could not build kappa_orch's Flink classes:\n{proc.stderr[-1500:]}")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target / KAPPA_JAR_FILE, "w") as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            # the table factories Flink discovers: the `kappa-jdbc` sink connector
            jar.writestr(f"META-INF/services/{TABLE_FACTORY}", "\n".join(TABLE_FACTORIES) + "\n")
            for compiled in sorted(Path(classes).rglob("*.class")):
                jar.write(compiled, compiled.relative_to(classes).as_posix())
    stamp.write_text(digest + "\n")
    return target
