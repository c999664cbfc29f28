"""The pull engine: XPM entities into the practice database, full or incremental."""
