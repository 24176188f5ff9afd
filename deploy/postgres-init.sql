-- One database per Gatehouse service: each service owns its schema and migrates it
-- itself (`gatehouse migrate`). The postgres image runs this file once, on the first
-- start with an empty data volume, as POSTGRES_USER (the owner of every database).
-- Keep in step with the GATEHOUSE_<SERVICE>_DB_URL values in docker-compose.yml
-- (tests/unit/test_compose.py checks both).
CREATE DATABASE gatehouse_identity;
CREATE DATABASE gatehouse_rbac;
CREATE DATABASE gatehouse_tenancy;
CREATE DATABASE gatehouse_audit;
CREATE DATABASE gatehouse_proxmox_sync;
