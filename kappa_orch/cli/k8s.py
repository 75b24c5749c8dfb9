"""`kappa-orch k8s render [--config FILE] [--out DIR] [--set KEY=VALUE ...]`,
`kappa-orch k8s validate [DIR]` and `kappa-orch k8s certificate [--out DIR]`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import main
from kappa_orch.cli.options import load_specs, platform_of, platform_options
from kappa_orch.errors import SpecError, require


@main.group(name="k8s")
def k8s_group() -> None:
    """Kubernetes packaging: render the manifests, validate them offline."""


def _settings(config: Path | None, sets: tuple[str, ...], *, model: Any = None) -> Any:
    """The render settings (or the part `model` names) from --config and --set."""
    from kappa_orch.k8s.settings import K8sSettings, load_settings

    overrides = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--set {item!r} is not KEY=VALUE", "e.g. --set flink.taskmanagers=4")
        overrides[key.strip()] = value.strip()
    return load_settings(config, overrides, model=model or K8sSettings)


def _report(files: dict[str, str], platform: Any, settings: Any) -> bool:
    from kappa_orch.k8s.validate import expected_problem, validate_render

    require("kubernetes_validate", "k8s", "kappa-orch k8s validate")
    require("dagster_k8s", "k8s", "kappa-orch k8s validate")

    findings = validate_render(
        files, jars_dir=Path(platform.home) / "jars" / "k8s", namespace=settings.namespace
    )
    for finding in findings:
        click.secho(str(finding), fg={True: None, False: "red", None: "yellow"}[finding.ok])
    return not [f for f in findings if f.ok is False and not expected_problem(f)]


@k8s_group.command(name="render")
@click.option("--config", "config", type=click.Path(path_type=Path), help="Render settings (YAML).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("k8s"), show_default=True)
@click.option("--set", "sets", multiple=True, help="A setting, e.g. --set secrets.warehouse_url.name=pg")
@platform_options
def render_command(config: Path | None, out: Path, sets: tuple[str, ...], **options: Any) -> None:
    """Write the Flink session cluster (FlinkDeployment), the SQL Gateway, Dagster's Helm
    values (K8sRunLauncher), Strimzi topics and Dockerfile.flink into --out, from the
    platform's configuration and the render settings; then validate them offline. The
    folder is replaced whole, never left half-written."""
    from kappa_orch.k8s.render import render

    platform = platform_of(options)
    settings = _settings(config, sets)
    files = render(platform, settings, load_specs(platform.specs))
    staging = Path(tempfile.mkdtemp(prefix=".k8s-", dir=out.parent if out.parent.exists() else None))
    for name, text in files.items():
        (staging / name).write_text(text)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(staging), out)
    click.echo(f"wrote {', '.join(sorted(files))} to {out}/")
    if not _report(files, platform, settings):
        raise SystemExit(1)


@k8s_group.command(name="validate")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False), default=Path("k8s"))
@click.option("--config", "config", type=click.Path(path_type=Path), help="Render settings (YAML).")
@click.option("--set", "sets", multiple=True)
@platform_options
def validate_command(folder: Path, config: Path | None, sets: tuple[str, ...], **options: Any) -> None:
    """Validate a rendered folder offline: core kinds against Kubernetes' schemas, the
    FlinkDeployment against the operator's CRD, the run launcher against dagster-k8s,
    the Strimzi topics structurally. Exit 1 on a problem (a Flink 2.x session against
    the older CRD served here is reported, not counted)."""
    platform = platform_of(options)
    settings = _settings(config, sets)
    files = {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}
    if not _report(files, platform, settings):
        raise SystemExit(1)


@k8s_group.command(name="certificate")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("k8s-tls"), show_default=True)
@click.option("--config", "config", type=click.Path(path_type=Path), help="Render settings (YAML).")
@click.option("--set", "sets", multiple=True, help="A setting, e.g. --set namespace=streaming")
@platform_options
def certificate_command(out: Path, config: Path | None, sets: tuple[str, ...], **options: Any) -> None:
    """Make the Flink cluster's certificate for the render (mutual TLS on its REST API, the
    SQL Gateway and its internal connections) into --out: keystore.p12 and truststore.p12
    for Flink, ca.pem and client.pem for kappa_orch's clients, each readable by you only.
    Then create the Secret the render names (flink.tls_secret) from that folder."""
    from kappa_orch.k8s.render import session_name
    from kappa_orch.k8s.settings import ClusterSettings
    from kappa_orch.k8s.tls import certificate_names
    from kappa_orch.stack.flink_security import FlinkTls, make_material

    platform = platform_of(options)
    settings = _settings(config, sets, model=ClusterSettings)
    if out.exists() and any(out.iterdir()):
        raise SpecError(f"{out} is not empty", "give an empty or new folder with --out")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = FlinkTls(
        keystore=out / "keystore.p12",
        truststore=out / "truststore.p12",
        password=settings.flink.tls_store_password,
        ca=out / "ca.pem",
        client=out / "client.pem",
    )
    names = certificate_names(session_name(platform), settings.namespace)
    make_material(files, names=names, subject=f"kappa-orch {platform.deployment}")
    click.echo(f"wrote keystore.p12, truststore.p12, ca.pem and client.pem to {out}/ for {', '.join(names)}")
    click.echo(
        f"create the Secret: kubectl -n {settings.namespace} create secret generic "
        f"{settings.flink.tls_secret} --from-file={out}"
    )
