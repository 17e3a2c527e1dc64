-- The three roles of a flag table {t} in schema {schema}. Create the login roles first
-- (CREATE ROLE ... LOGIN PASSWORD '...'), then run part 1 as a superuser (or the schema's
-- owner), migrate as {migrator}, and run part 2 as {migrator}.

-- Part 1, before the migration.
-- migrator: runs `featurectl migrate`. It owns what the migrations create: the tables, the
-- trigger functions (which run as their owner) and the triggers.
GRANT USAGE, CREATE ON SCHEMA {schema} TO {migrator};
GRANT USAGE ON SCHEMA {schema} TO {reader}, {writer};

-- Part 2, after the migration.
-- reader: every service instance (the provider) and `featurectl audit verify`. It reads the
-- flags and the audit log; LISTEN needs no grant.
GRANT SELECT ON {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_migrations TO {reader};
-- writer: admin tools (the write API, `featurectl push`). The audit rows are written by the
-- triggers, as the migrator: the writer can neither write nor change nor delete them.
GRANT SELECT, INSERT, UPDATE, DELETE ON {t}, {t}_segments TO {writer};
GRANT SELECT ON {t}_audit, {t}_migrations TO {writer};
-- The flag server runs as the writer and keeps its API tokens (hashes only) next to the flags;
-- service instances (reader) never see them. Tokens are revoked, never deleted.
GRANT SELECT, INSERT, UPDATE ON {t}_tokens TO {writer};
GRANT USAGE ON SEQUENCE {t}_tokens_seq_seq TO {writer};
