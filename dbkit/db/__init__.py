"""The JDBC-like layer over SQLAlchemy 2: dialects, capabilities, types, engines."""
