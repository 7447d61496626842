"""The store: SQL schema (models, Alembic migrations), engines and sessions (db), writers that
take engine domain objects (catalog_repo, member_repo, import_repo), readers that give them back
(loader), and the change feed replicas follow (feed). Writers never commit; the caller does."""
