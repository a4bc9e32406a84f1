# syntax=docker/dockerfile:1
# The leadflow image: one image for the worker (stream agents + HTTP API) and the dashboard;
# the command picks the role (`leadflow worker`, `leadflow dashboard --port 8501`).
# Build: docker build -t leadflow:0.1.0 .   (docker compose builds it for you)

# Pinned to a patch release and a Debian release so a rebuild gets the same interpreter and
# libc; rocksdict, faust-streaming and every other dependency ship manylinux wheels for
# CPython 3.12 on amd64 and arm64, so neither stage needs a compiler.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

# --- build: the leadflow wheel, then a virtualenv with it and its runtime dependencies -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
COPY dashboard ./dashboard
COPY avro ./avro
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 # binary wheels only: a dependency that would need compiling fails the build here, not at run
 && /opt/venv/bin/pip install --only-binary=:all: /wheels/leadflow-*.whl \
 # streams/schemas.py reads the Avro contracts from avro/ beside the installed packages
 && cp -r avro "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/avro" \
 && /opt/venv/bin/pip uninstall --yes pip \
 # the contracts are found and FULL_TRANSITIVE, and the command loads, before anything ships
 && /opt/venv/bin/leadflow schemas check \
 && /opt/venv/bin/leadflow --help > /dev/null

# --- runtime: the interpreter, the virtualenv, the default configuration; no build tools ------
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" leadflow \
 && useradd --system --uid "${UID}" --gid leadflow --create-home --home-dir /home/leadflow \
        --shell /usr/sbin/nologin leadflow \
 # Mount points exist in the image, owned by leadflow, so the volumes mounted there start out
 # owned by leadflow too: /data/worker (a worker's RocksDB), /var/log/leadflow (audit log).
 && mkdir -p /data/worker /var/log/leadflow /etc/leadflow \
 && chown -R leadflow:leadflow /data /var/log/leadflow
COPY --from=build /opt/venv /opt/venv
# The handoff rules ([scoring] [routing] [sla] [model]); mount your own over it to change them.
COPY leadflow.toml /etc/leadflow/leadflow.toml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEADFLOW_CONFIG=/etc/leadflow/leadflow.toml \
    LEADFLOW_DATA_DIR=/data \
    LEADFLOW_STORE=rocksdb \
    LEADFLOW_WEB_HOST=0.0.0.0 \
    LEADFLOW_WEB_PORT=8080 \
    LEADFLOW_DASHBOARD_HOST=0.0.0.0 \
    LEADFLOW_DASHBOARD_PORT=8501
USER leadflow
WORKDIR /data
# RocksDB tables (DATA_DIR/worker), model registry, training examples, archive.
VOLUME ["/data"]
# 8080: the worker's HTTP API (Faust web); 8501: the dashboard.
EXPOSE 8080 8501
# The worker's health (broker reachable, tables recovered); the dashboard service overrides it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=4 \
    CMD python -c "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v1/health' % os.environ.get('LEADFLOW_WEB_PORT', '8080'), timeout=4)"
ENTRYPOINT ["leadflow"]
CMD ["worker"]
