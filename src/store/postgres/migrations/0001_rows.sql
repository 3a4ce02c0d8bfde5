-- Schema 1 of Sesame's PostgreSQL store (src/store/postgres.rs). Released migrations are never
-- edited: a change to the schema is a new file with the next number.
--
-- Names are compared byte by byte (COLLATE "C"), as redb does, so the feed, scans and counter
-- listings come out in the same order on both engines whatever the database's locale.

-- Every row of every table. A deleted row stays as a tombstone (value NULL) at the revision
-- of the commit that deleted it, so the change feed can say that it went.
CREATE TABLE rows (
    tbl text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    revision bigint NOT NULL,
    value bytea,
    PRIMARY KEY (tbl, id)
);

-- The change feed reads rows by the revision that last wrote them.
CREATE INDEX rows_by_revision ON rows (revision);

-- Exact counters (budgets, download limits), changed only by single conditional updates.
CREATE TABLE counters (
    name text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);

-- The revision of the last commit, in a single row. Every commit takes the next revision by
-- updating this row first and holds its lock until it commits, which serialises commits so
-- that revision order is commit order.
CREATE TABLE head (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    revision bigint NOT NULL
);
INSERT INTO head (revision) VALUES (0);

-- a + b, held at the ends of bigint instead of failing, as Rust's i64::saturating_add.
CREATE FUNCTION sesame_saturating_add(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT LEAST(GREATEST(a::numeric + b, -9223372036854775808), 9223372036854775807)::bigint $$;
