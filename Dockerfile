# syntax=docker/dockerfile:1.7
# One image runs every stage: `radstream stage NAME [--model M]`.
#
#   docker build --target runtime-cpu -t radstream:dev .      # every CPU stage (the default target)
#   docker build --target runtime-gpu -t radstream-gpu:dev .  # infer on NVIDIA GPUs
#
# Targets: builder (the radstream wheel) -> deps-cpu / deps-gpu (a venv with the
# matching torch build) -> runtime-cpu / runtime-gpu (slim, non-root, no compilers).
# The image carries models/registry/*.json (and versions/*/*.json) and models/artifacts/* as they are in the
# build context: build the demo models (`radstream models build-demo`) first.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# torch and torchvision as pyproject.toml pins them (tests/unit/deploy/test_dockerfile.py checks it),
# so installing the radstream wheel afterwards changes neither.
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# CUDA flavour of the GPU wheel (download.pytorch.org/whl/<TORCH_CUDA>); match the nodes' driver.
ARG TORCH_CUDA=cu128

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY radstream/ radstream/
COPY domain/ domain/
COPY streams/ streams/
COPY services/ services/
COPY models/ models/
COPY schemas/ schemas/
COPY evaluation/ evaluation/
RUN pip wheel --no-deps --wheel-dir /wheels .

# torch first, from the CPU index: no CUDA libraries. radstream's own pins (torch, torchvision)
# are then already satisfied. The schemaregistry extra brings the registry client's
# dependencies, used only when RADSTREAM_SCHEMA_REGISTRY_URL is set.
FROM ${PYTHON_IMAGE} AS deps-cpu
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/radstream \
 && /opt/radstream/bin/pip install --index-url https://download.pytorch.org/whl/cpu \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY --from=builder /wheels /wheels
RUN /opt/radstream/bin/pip install /wheels/*.whl "confluent-kafka[schemaregistry]" \
 && if /opt/radstream/bin/pip list 2>/dev/null | grep -i '^nvidia-'; then echo "CUDA libraries in the CPU image" >&2; exit 1; fi

FROM ${PYTHON_IMAGE} AS deps-gpu
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ARG TORCH_CUDA
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/radstream \
 && /opt/radstream/bin/pip install --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY --from=builder /wheels /wheels
# onnxruntime-gpu is the same `onnxruntime` module with the CUDA execution provider (D-031);
# the two wheels must not both be installed.
ARG ONNXRUNTIME_VERSION=1.32.0
RUN /opt/radstream/bin/pip install /wheels/*.whl "confluent-kafka[schemaregistry]" \
 && /opt/radstream/bin/pip uninstall -y onnxruntime \
 && /opt/radstream/bin/pip install "onnxruntime-gpu==${ONNXRUNTIME_VERSION}"

# Shared by both runtimes. The root filesystem is read-only in Kubernetes: RADSTREAM_HOME
# (and HOME) and /tmp are mounted writable there, the blob store is a shared volume.
FROM ${PYTHON_IMAGE} AS runtime-base
RUN groupadd --system --gid 10001 radstream \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/radstream/home --shell /usr/sbin/nologin radstream \
 && mkdir -p /var/lib/radstream/home /var/lib/radstream/blobs \
 && chown -R 10001:10001 /var/lib/radstream
ENV PATH=/opt/radstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/radstream/home \
    RADSTREAM_HOME=/var/lib/radstream/home \
    RADSTREAM_BLOB_URL=file:///var/lib/radstream/blobs \
    RADSTREAM_HEALTH_HOST=0.0.0.0 \
    RADSTREAM_HEALTH_PORT=8080
WORKDIR /var/lib/radstream/home
EXPOSE 8080
ENTRYPOINT ["radstream"]
CMD ["--help"]

# infer on GPU nodes. The CUDA runtime comes with the torch wheel (nvidia-* packages);
# the driver comes from the node through the NVIDIA container toolkit.
FROM runtime-base AS runtime-gpu
COPY --from=deps-gpu /opt/radstream /opt/radstream
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001

# Every CPU stage (decode, preprocess, fuse, qc, and infer where there is no GPU).
# Last, so that a plain `docker build .` gives this one.
FROM runtime-base AS runtime-cpu
COPY --from=deps-cpu /opt/radstream /opt/radstream
USER 10001:10001
