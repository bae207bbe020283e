-- stv3 event store, SQLite (the embedded default). Same logical schema as
-- ../mysql/20260101000001_initial.sql; see the notes there.
CREATE TABLE event_type (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    "desc" TEXT NOT NULL UNIQUE
);

CREATE TABLE event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    generated INTEGER NOT NULL,
    event_type_id INTEGER NOT NULL REFERENCES event_type (id)
);
CREATE INDEX ix_event_generated ON event (generated);
CREATE INDEX ix_event_type_id ON event (event_type_id, id);

CREATE TABLE "trait" (
    event_id INTEGER NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    t_string TEXT NULL,
    t_float REAL NULL,
    t_int INTEGER NULL,
    t_datetime INTEGER NULL,
    PRIMARY KEY (event_id, name)
) WITHOUT ROWID;
CREATE INDEX ix_trait_string ON "trait" (name, t_string);
CREATE INDEX ix_trait_int ON "trait" (name, t_int);
CREATE INDEX ix_trait_float ON "trait" (name, t_float);
CREATE INDEX ix_trait_datetime ON "trait" (name, t_datetime);

CREATE TABLE stream (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_event INTEGER NOT NULL,
    last_event INTEGER NOT NULL,
    expire_timestamp INTEGER NULL,
    fire_timestamp INTEGER NULL,
    name TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 1,
    state_serial_no INTEGER NOT NULL DEFAULT 0,
    lease_expires INTEGER NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    fire_counts TEXT NULL,
    stream_key TEXT NULL
);
CREATE INDEX ix_stream_name ON stream (name, id);
CREATE INDEX ix_stream_state ON stream (state, id);
CREATE INDEX ix_stream_fire ON stream (state, fire_timestamp);
CREATE INDEX ix_stream_expire ON stream (state, expire_timestamp);
CREATE INDEX ix_stream_first ON stream (first_event);
CREATE INDEX ix_stream_last ON stream (last_event);

CREATE TABLE stream_key (
    stream_key TEXT NOT NULL PRIMARY KEY,
    stream_id INTEGER NULL
) WITHOUT ROWID;

CREATE TABLE dist_trait (
    stream_id INTEGER NOT NULL REFERENCES stream (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    dt_string TEXT NULL,
    dt_float REAL NULL,
    dt_int INTEGER NULL,
    dt_datetime INTEGER NULL,
    dt_timerange_begin INTEGER NULL,
    dt_timerange_end INTEGER NULL,
    PRIMARY KEY (stream_id, name)
) WITHOUT ROWID;
CREATE INDEX ix_dist_trait_string ON dist_trait (name, dt_string);
CREATE INDEX ix_dist_trait_int ON dist_trait (name, dt_int);
CREATE INDEX ix_dist_trait_float ON dist_trait (name, dt_float);
CREATE INDEX ix_dist_trait_datetime ON dist_trait (name, dt_datetime);
CREATE INDEX ix_dist_trait_timerange ON dist_trait (name, dt_timerange_begin, dt_timerange_end);

CREATE TABLE streamevent (
    stream_id INTEGER NOT NULL REFERENCES stream (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, event_id)
) WITHOUT ROWID;
CREATE INDEX ix_streamevent_event ON streamevent (event_id);
