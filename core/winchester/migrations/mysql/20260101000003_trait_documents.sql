-- Traits as one document per event (stv3_event::stored): `event.traits` holds
-- every trait of the event, and the `trait` table becomes an index that holds
-- rows only for the trait names listed in `indexed_trait` (ready = 1 once every
-- stored event has its rows). Rows written before this migration keep
-- `traits` NULL and all their trait rows, and readers use the rows for them.
-- An ingest transaction reads `trait_index_gen` under a shared lock; adding an
-- indexed name bumps `gen`, which waits for in-flight ingests and makes later
-- ones reload the names (`winchester-db index add`).
ALTER TABLE event ADD COLUMN traits MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;

CREATE TABLE indexed_trait (
    name VARCHAR(100) NOT NULL PRIMARY KEY,
    ready INT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE trait_index_gen (
    id INT NOT NULL PRIMARY KEY,
    gen BIGINT NOT NULL
) ENGINE=InnoDB;

INSERT INTO trait_index_gen (id, gen) VALUES (1, 0);
INSERT INTO indexed_trait (name, ready) VALUES
    ('instance_id', 1), ('request_id', 1), ('tenant_id', 1), ('user_id', 1), ('host', 1);
