# The tuner image: `tuner worker`, `mlflow server` and `optuna-dashboard` (see docker-compose.yml).
# Every dependency ships as a wheel, so no compiler is installed; the build stage's pip cache and
# sources stay behind in the build stage.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model ./model
COPY tuner ./tuner
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . "optuna-dashboard==0.21.*"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 tuner \
 && mkdir -p /mlartifacts /app \
 && chown tuner:tuner /mlartifacts /app
WORKDIR /app
COPY --chown=tuner:tuner studies ./studies
COPY --chown=tuner:tuner data ./data
USER tuner
CMD ["tuner", "--help"]
