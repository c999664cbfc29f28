"""The developer harness of xpm-sync: the demo (`make demo`, `make airflow`) and the production
stack as local processes (`make stack`), around the XPM sandbox. Not part of the product: it is
installed by the Makefile for development and tests, never by the product's wheel or image."""
