-- Traits as one document per event; see ../mysql/20260101000003_trait_documents.sql.
ALTER TABLE event ADD COLUMN traits TEXT NULL;

CREATE TABLE indexed_trait (
    name TEXT NOT NULL PRIMARY KEY,
    ready INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE trait_index_gen (
    id INTEGER NOT NULL PRIMARY KEY,
    gen INTEGER NOT NULL
);

INSERT INTO trait_index_gen (id, gen) VALUES (1, 0);
INSERT INTO indexed_trait (name, ready) VALUES
    ('instance_id', 1), ('request_id', 1), ('tenant_id', 1), ('user_id', 1), ('host', 1);
