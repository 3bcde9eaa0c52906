-- Run once by the postgres image on an empty data directory: one database per service
-- (each kms region owns its own). The services create their tables (Alembic) at start.
CREATE DATABASE securefiles_authz;
CREATE DATABASE securefiles_storage;
CREATE DATABASE securefiles_kms_eu;
CREATE DATABASE securefiles_kms_us;
