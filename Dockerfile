# Build stage: wheels for every pinned dependency.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

# Runtime stage: no compilers, a non-root user, static files collected at build time.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=5005
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels \
    && useradd --create-home --uid 10001 chat2api
COPY --chown=10001:10001 . .
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && mkdir -p var && chown 10001:10001 var
USER 10001
EXPOSE 5005
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PORT'], timeout=4)"]
CMD ["python", "-m", "chat2api_site.serve"]
