# Prewarm, the KEDA external scaler: a slim, non-root runtime image.
#   docker build -t <registry>/prewarm:0.1.0 .
# Stage 1 generates the gRPC stubs from protos/ and builds the wheel; stage 2
# holds only Python, the pinned runtime dependencies and the wheel.

# The base of both stages: a pinned tag of the official image (bump deliberately;
# add @sha256 for full immutability). Any Debian-like image with python3 and its
# venv module works too (`--build-arg BASE_IMAGE=...`; .ci/image-test.sh builds on
# a bookworm made with mmdebstrap), so every command below says python3, not python.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Build tools, pinned, in a virtualenv of their own (a distribution's python3 has
# no pip of its own); they stay in this stage.
RUN python3 -m venv /build \
    && /build/bin/pip install --no-cache-dir grpcio-tools==1.85.1 setuptools==80.9.0 wheel==0.45.1
COPY pyproject.toml README.md requirements.lock ./
COPY protos/ protos/
COPY scaler/ scaler/
# The stubs are generated here from the proto (the committed ones are only for
# development), then the project is built as a wheel.
RUN rm -rf scaler/_proto/*_pb2*.py* \
    && /build/bin/python -m scaler.protogen \
    && /build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .
# The runtime virtualenv, without pip: pinned dependencies, then the wheel alone.
RUN python3 -m venv --without-pip /opt/prewarm \
    && /build/bin/pip --python /opt/prewarm/bin/python install --no-cache-dir --no-deps -r requirements.lock \
    && /build/bin/pip --python /opt/prewarm/bin/python install --no-cache-dir --no-deps /dist/prewarm-*.whl \
    && /opt/prewarm/bin/python -c "import scaler.server, scaler.cli"

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="prewarm" \
      org.opencontainers.image.description="KEDA external scaler for GPU inference: queue backlog, GPU duty cycle, forecast" \
      org.opencontainers.image.licenses="Apache-2.0"
# The root filesystem is read-only in the cluster: no bytecode writes, and a
# HOME that points at the writable /tmp emptyDir.
ENV PATH=/opt/prewarm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The official image ships pip (and setuptools) in its interpreter: the runtime
# installs nothing, so they go; a distribution's python3 has none to remove.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --no-cache-dir pip setuptools wheel; \
    fi
COPY --from=builder /opt/prewarm /opt/prewarm
# A numeric user, so Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 10001:10001
# gRPC (KEDA), Prometheus /metrics.
EXPOSE 6000 8080
ENTRYPOINT ["prewarm", "serve"]
