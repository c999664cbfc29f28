"""The XPM integration page in the Airflow UI (mounted by the plugin in plugins/)."""
