# syntax=docker/dockerfile:1
# The serving image: `depdetect serve` (classifier), `depdetect api serve`,
# `depdetect db migrate`, `depdetect broker topics`, `depdetect publish`, ...
# It installs the `serving` extra only: onnxruntime, no torch.
#
#   docker build -f deploy/docker/serving.Dockerfile -t depdetect-serving:0.1.0 .
#   docker run --rm depdetect-serving:0.1.0 config
#
# The model bundle is not baked in: mount one and set DEPDETECT_MODEL__BUNDLE_PATH
# (compose.yaml mounts ./var/bundle read-only at /bundle).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_NO_CACHE=1
RUN pip install "uv==0.13.*" && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Exactly the packages the wheel ships (pyproject.toml, [tool.hatch.build.targets.wheel]);
# the `training` package is plain Python here, its heavy dependencies are not installed.
COPY pyproject.toml uv.lock README.md ./
COPY depdetect ./depdetect
COPY schemas ./schemas
COPY services ./services
COPY training ./training
# Exactly the locked versions (uv.lock): delivery guarantees depend on library behaviour.
RUN uv sync --frozen --no-editable --extra serving

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 depdetect \
    && useradd --system --uid 10001 --gid depdetect --create-home \
        --home-dir /home/depdetect --shell /usr/sbin/nologin depdetect
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEPDETECT_SERVICE__HEALTH_HOST=0.0.0.0 \
    DEPDETECT_API__HOST=0.0.0.0
WORKDIR /home/depdetect
USER depdetect
# 8000: results API; 8081: classifier /health and /metrics.
EXPOSE 8000 8081
ENTRYPOINT ["depdetect"]
CMD ["--help"]
