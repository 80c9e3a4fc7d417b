# The image behind compose.yaml: the app, the workers and the CLI are the same image.
# `pip install .` takes PyPI's default torch wheel, which is the CUDA build on Linux x86-64.
FROM python:3.11-slim
WORKDIR /srv/trainboard
COPY pyproject.toml README.md ./
COPY app ./app
COPY engine ./engine
COPY jobs ./jobs
RUN pip install --no-cache-dir .
ENV TRAINBOARD_HOME=/data
VOLUME /data
EXPOSE 8501
CMD ["trainboard", "up", "--no-browser", "--port", "8501"]
