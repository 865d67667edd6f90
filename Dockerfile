FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
RUN pip install --no-cache-dir -c requirements.lock -e .
COPY . .
RUN DEBUG=true SECRET_KEY=build-only-key-not-used-at-runtime-xxxxxxxx python manage.py collectstatic --no-input
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
