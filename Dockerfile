# syntax=docker/dockerfile:1.7
#
# Two images from one file:
#   docker build --target operator -t tryon-operator:dev .
#   docker build --target renderer -t tryon-renderer:dev .
#
# Layers go from least to most often changed: the Python dependencies are installed from
# pyproject.toml alone, before any source is copied, so a code change rebuilds only the last layers.
# The project itself is built once as a wheel (pure Python, no compiler) and installed with
# --no-deps into a virtual environment that the final stages copy; the renderer copies its
# dependencies and the project's own files as two layers, so a code change does not rebuild or
# push its 6 GB of dependencies. pip and setuptools do not reach the final images, nor does any
# compiler or package-manager cache.
#
# Build arguments:
#   PYTHON_IMAGE     base of the builder stages and of the operator image
#   RENDERER_BASE    base of the renderer image. It must provide Python 3.11 as `python` at the
#                    same path as PYTHON_IMAGE (the virtual environment is copied, not rebuilt).
#                    PyPI's Linux torch wheels bring their own CUDA runtime libraries, so the
#                    default base runs on GPU nodes with the NVIDIA container toolkit; point it at
#                    a CUDA base image of your own that has Python 3.11 if you need one.
#   TORCH_INDEX_URL  an extra package index for torch, e.g. the CPU-only index for CI (empty: PyPI)
#   VERSION, COMMIT  recorded as OCI labels

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG RENDERER_BASE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# wheel: the project built as a wheel (setuptools only; no compiler is needed)
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY renderer ./renderer
COPY training ./training
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# operator-venv: kopf, kubernetes client, mlflow-skinny; no torch
FROM ${PYTHON_IMAGE} AS operator-venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
RUN python -m venv /opt/venv
COPY pyproject.toml hack/requirements-from-pyproject.py ./
RUN python requirements-from-pyproject.py pyproject.toml operator > requirements.txt \
    && /opt/venv/bin/pip install --requirement requirements.txt
COPY --from=wheel /wheels /wheels
RUN /opt/venv/bin/pip install --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# ---------------------------------------------------------------------------------------------
# renderer-deps: torch, FastAPI, boto3, mlflow-skinny, from pyproject.toml alone (changes only when
# the dependencies do)
FROM ${RENDERER_BASE} AS renderer-deps
ARG TORCH_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
RUN python -m venv /opt/venv
COPY pyproject.toml hack/requirements-from-pyproject.py ./
RUN python requirements-from-pyproject.py pyproject.toml renderer > requirements.txt \
    && /opt/venv/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
       --requirement requirements.txt

# renderer-deps-slim: the same venv without pip, setuptools and wheel. The final image copies it
# as one ~6 GB layer that a code change does not touch.
FROM renderer-deps AS renderer-deps-slim
RUN /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# renderer-venv: the project's own files under /opt/project (--root, first: pip would skip a
# package the venv already has), which the final image adds as a layer of its own (under 1 MB)
# over renderer-deps-slim's venv; then the project in the venv itself, for pip check.
FROM renderer-deps AS renderer-venv
COPY --from=wheel /wheels /wheels
RUN /opt/venv/bin/pip install --no-deps --root /opt/project /wheels/*.whl \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check

# ---------------------------------------------------------------------------------------------
# operator: the final operator image
FROM ${PYTHON_IMAGE} AS operator
# No pip, setuptools or wheel in the image that runs: nothing here installs packages at run time.
RUN python -m pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 10001 tryon \
    && useradd --system --uid 10001 --gid tryon --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tryon
COPY --from=operator-venv /opt/venv /opt/venv
# After the layers: a new commit changes only this metadata, not a layer's cache key.
ARG VERSION=0.0.0-dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="tryon-operator" \
      org.opencontainers.image.description="Kubernetes operator for blue/green try-on model rollouts" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TRYON_METRICS_PORT=8080
USER 10001:10001
# 8080 metrics; 8081 MLflow webhook receiver (TRYON_WEBHOOK_PORT, needs TRYON_WEBHOOK_SECRET);
# 8082 kopf liveness (--liveness=http://0.0.0.0:8082/healthz)
EXPOSE 8080 8081 8082
ENTRYPOINT ["tryon-operator"]

# ---------------------------------------------------------------------------------------------
# renderer: the final renderer image (listens on 8080: /v1/tryon, /healthz, /readyz, /metrics)
FROM ${RENDERER_BASE} AS renderer
RUN python -m pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 10001 tryon \
    && useradd --system --uid 10001 --gid tryon --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tryon
COPY --from=renderer-deps-slim /opt/venv /opt/venv
COPY --from=renderer-venv /opt/project/ /
# After the layers: a new commit changes only this metadata, not a layer's cache key.
ARG VERSION=0.0.0-dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="tryon-renderer" \
      org.opencontainers.image.description="FastAPI + PyTorch virtual try-on renderer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TRYON_HOST=0.0.0.0 \
    TRYON_PORT=8080
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["tryon-renderer"]
