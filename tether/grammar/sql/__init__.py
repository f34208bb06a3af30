"""SQL front-end: the SQLite SELECT grammar (`grammar`), database schemas (`schema`) and the
checker of names against a schema (`scope`)."""
