# The user code image: kappa_orch with its pinned dependencies, the reference deployment
# (definitions.py, resources/, sensors/) and the pipeline specs. Dagster's Helm chart runs
# it as the code location (`dagster api grpc --python-file /opt/kappa/definitions.py`,
# see `kappa-orch k8s render`), and the K8sRunLauncher runs every run in it.
#   docker build -t registry.example.com/kappa-user-code:0.1.0 .
FROM python:3.11-slim-bookworm
WORKDIR /opt/kappa
COPY pyproject.toml constraints.txt README.md ./
COPY kappa_orch ./kappa_orch
# the base install and the k8s extra (dagster-k8s): no JVM or pyflink, the code location
# talks to Flink through its REST API and SQL Gateway
RUN pip install --no-cache-dir -c constraints.txt '.[k8s]' && useradd --uid 10001 kappa
COPY definitions.py ./
COPY resources ./resources
COPY sensors ./sensors
COPY assets ./assets
ENV KAPPA_SPECS=/opt/kappa/assets KAPPA_HOME=/tmp/kappa PYTHONUNBUFFERED=1
USER 10001
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "--python-file", "/opt/kappa/definitions.py"]
