# The image docker-compose.yaml runs: Airflow's own image at the version requirements.txt pins,
# with xpm-sync installed against the project's lock (constraints.txt).
FROM apache/airflow:3.3.2-python3.11

USER root
# psql, for airflow-init to create the practice database beside Airflow's.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md /opt/xpm-sync/
COPY --chown=airflow:0 include /opt/xpm-sync/include
RUN pip install --no-cache-dir -r /opt/xpm-sync/requirements.txt -c /opt/xpm-sync/constraints.txt \
    && pip install --no-cache-dir --no-deps /opt/xpm-sync

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
