-- SQLite only: the value index of indexed traits becomes one integer key per
-- (event, indexed trait): `stv3_event::stored::index_key(name, value)`, the
-- 64-bit hash of the trait's traits-document fragment. One b-tree insert of
-- two integers per row, instead of a text primary key (event_id, name) plus a
-- text value index; readers confirm each key's events against the document
-- (`INSTR(traits, fragment)`), so a hash collision costs a row read, never a
-- wrong match (events stored before documents, with no document, are matched
-- on the key alone). No foreign key: purges delete an event's keys by computing
-- them from its traits (a cascade would need a second index by event_id).
--
-- The `trait` table stays: MySQL's layout, and the rows of events stored
-- before traits documents (readers and purges still use them).
CREATE TABLE trait_key (
    key INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (key, event_id)
) WITHOUT ROWID;

-- Every indexed name needs its keys written for the events already stored:
-- not ready (filters read the documents) until `winchester-db upgrade`
-- backfills them, right after this migration (Store::migrate).
UPDATE indexed_trait SET ready = 0;
UPDATE trait_index_gen SET gen = gen + 1 WHERE id = 1;
