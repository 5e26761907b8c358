# surge operator image: multi-stage, slim, non-root. Build: docker build -t surge .
# The base image is pinned by digest (refresh: docker buildx imagetools inspect python:3.11-slim) and
# Python dependencies come from the hash-pinned requirements.lock (scripts/lock.sh), so a build
# resolves nothing at build time: the same inputs give the same image.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/surge \
 && /opt/surge/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY autoscaler autoscaler
COPY scalers scalers
COPY provisioner provisioner
# --no-deps: everything surge needs is in the lock; pip check fails the build if the lock is stale
RUN /opt/surge/bin/pip install --no-cache-dir --no-deps . && /opt/surge/bin/pip check

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
COPY --from=build /opt/surge /opt/surge
ENV PATH=/opt/surge/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["surge"]
CMD ["operator"]
