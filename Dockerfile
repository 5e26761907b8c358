# surge operator image: multi-stage, slim, non-root. Build: docker build -t surge .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler autoscaler
COPY scalers scalers
COPY provisioner provisioner
RUN python -m venv /opt/surge && /opt/surge/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/surge /opt/surge
ENV PATH=/opt/surge/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["surge"]
CMD ["operator"]
