"""The practice database: models, engine, migrations and upserts."""
