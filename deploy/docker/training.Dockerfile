# syntax=docker/dockerfile:1
# The training image: `depdetect train ...` builds model bundles (needs torch).
#
#   docker build -f deploy/docker/training.Dockerfile -t depdetect-training:0.1.0 .
#   docker run --rm -v "$PWD/var:/work/var" depdetect-training:0.1.0 train all
#
# torch is the version uv.lock pins from PyPI: a CUDA build (several GB) that also runs
# on CPU. For an NVIDIA GPU, run with `docker run --gpus all ...` (the host needs only
# the driver and the NVIDIA Container Toolkit), or start from a CUDA base, e.g.
# --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04, after installing
# Python 3.11 or 3.12 into it (that base has no python3.11-slim layout).
#
# Paths (settings.data.*): outputs under /work/var/training (mount /work/var to keep
# them); the repo's sample under /work/training/sample_data; the full seed data, when
# used, at /shared/data/seed (mount it there or set DEPDETECT_DATA__SEED_DIR).

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_NO_CACHE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN pip install "uv==0.13.*" && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /work
COPY pyproject.toml uv.lock README.md ./
COPY depdetect ./depdetect
COPY schemas ./schemas
COPY services ./services
COPY training ./training
# Exactly the locked versions (uv.lock), torch included. The serving extra comes too: it
# lets this image check the bundles it builds. Editable, so the checkout layout holds:
# settings' paths resolve under /work.
RUN uv sync --frozen --extra training --extra serving

RUN groupadd --system --gid 10001 depdetect \
    && useradd --system --uid 10001 --gid depdetect --create-home \
        --home-dir /home/depdetect --shell /usr/sbin/nologin depdetect \
    && mkdir -p /work/var \
    && chown depdetect:depdetect /work/var
# Hugging Face downloads (encoders) go to a cache you can mount to keep them.
ENV HF_HOME=/work/var/hf-cache
USER depdetect
VOLUME ["/work/var"]
ENTRYPOINT ["depdetect"]
CMD ["train", "--help"]
