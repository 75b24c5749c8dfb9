# The user code image: kappa_orch with its pinned dependencies, the reference deployment
# (definitions.py, resources/, sensors/) and the pipeline specs. Dagster's Helm chart runs
# it as the code location (`dagster api grpc --python-file /opt/kappa/definitions.py`,
# see `kappa-orch k8s render`), and the K8sRunLauncher runs every run in it.
#   docker build -t registry.example.com/kappa-user-code:0.1.0 .
FROM python:3.11-slim-bookworm
# a JVM: the spec planner asks Flink's own planner (pyflink) to validate the SQL
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kappa
COPY pyproject.toml constraints.txt README.md ./
COPY kappa_orch ./kappa_orch
RUN pip install --no-cache-dir -c constraints.txt . && useradd --uid 10001 kappa
COPY definitions.py ./
COPY resources ./resources
COPY sensors ./sensors
COPY assets ./assets
ENV KAPPA_SPECS=/opt/kappa/assets KAPPA_HOME=/tmp/kappa PYTHONUNBUFFERED=1
USER 10001
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "--python-file", "/opt/kappa/definitions.py"]
