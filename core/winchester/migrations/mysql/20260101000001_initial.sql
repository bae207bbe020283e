-- stv3 event store, MySQL/MariaDB. Equivalent to winchester's alembic revisions
-- 3ab6d7bf80cd (events) and 44289d1492e6 (streams), with these documented differences:
--   * every timestamp is BIGINT microseconds since the Unix epoch, UTC (the original used
--     DECIMAL(20,6) seconds on MySQL and DATETIME elsewhere);
--   * ids are BIGINT;
--   * stream_key makes "find or create the active stream" atomic across ingesters;
--   * stream.lease_expires lets another worker retry a stream whose worker died mid-pipeline;
--   * stream.event_count / fire_counts make fire-criteria evaluation incremental.
CREATE TABLE event_type (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `desc` VARCHAR(255) NOT NULL,
    UNIQUE KEY ux_event_type_desc (`desc`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE event (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message_id VARCHAR(50) NOT NULL,
    generated BIGINT NOT NULL,
    event_type_id INT NOT NULL,
    UNIQUE KEY ux_event_message_id (message_id),
    KEY ix_event_generated (generated),
    KEY ix_event_type_id (event_type_id, id),
    CONSTRAINT fk_event_type FOREIGN KEY (event_type_id) REFERENCES event_type (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `trait` (
    event_id BIGINT NOT NULL,
    name VARCHAR(100) NOT NULL,
    type INT NOT NULL,
    t_string VARCHAR(255) NULL,
    t_float DOUBLE NULL,
    t_int BIGINT NULL,
    t_datetime BIGINT NULL,
    PRIMARY KEY (event_id, name),
    KEY ix_trait_string (name, t_string),
    KEY ix_trait_int (name, t_int),
    KEY ix_trait_float (name, t_float),
    KEY ix_trait_datetime (name, t_datetime),
    CONSTRAINT fk_trait_event FOREIGN KEY (event_id) REFERENCES event (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stream (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    first_event BIGINT NOT NULL,
    last_event BIGINT NOT NULL,
    expire_timestamp BIGINT NULL,
    fire_timestamp BIGINT NULL,
    name VARCHAR(255) NOT NULL,
    state INT NOT NULL DEFAULT 1,
    state_serial_no INT NOT NULL DEFAULT 0,
    lease_expires BIGINT NULL,
    event_count INT NOT NULL DEFAULT 0,
    fire_counts VARCHAR(1024) NULL,
    stream_key CHAR(64) NULL,
    KEY ix_stream_name (name, id),
    KEY ix_stream_state (state, id),
    KEY ix_stream_fire (state, fire_timestamp),
    KEY ix_stream_expire (state, expire_timestamp),
    KEY ix_stream_first (first_event),
    KEY ix_stream_last (last_event)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per logical stream key (sha256 of trigger name + distinguishing traits).
-- Ingesters lock this row (SELECT ... FOR UPDATE) to find-or-create the active stream,
-- so two ingesters can never split one logical stream in two.
CREATE TABLE stream_key (
    stream_key CHAR(64) NOT NULL PRIMARY KEY,
    stream_id BIGINT NULL
) ENGINE=InnoDB;

CREATE TABLE dist_trait (
    stream_id BIGINT NOT NULL,
    name VARCHAR(100) NOT NULL,
    type INT NOT NULL,
    dt_string VARCHAR(255) NULL,
    dt_float DOUBLE NULL,
    dt_int BIGINT NULL,
    dt_datetime BIGINT NULL,
    dt_timerange_begin BIGINT NULL,
    dt_timerange_end BIGINT NULL,
    PRIMARY KEY (stream_id, name),
    KEY ix_dist_trait_string (name, dt_string),
    KEY ix_dist_trait_int (name, dt_int),
    KEY ix_dist_trait_float (name, dt_float),
    KEY ix_dist_trait_datetime (name, dt_datetime),
    KEY ix_dist_trait_timerange (name, dt_timerange_begin, dt_timerange_end),
    CONSTRAINT fk_dist_trait_stream FOREIGN KEY (stream_id) REFERENCES stream (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE streamevent (
    stream_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (stream_id, event_id),
    KEY ix_streamevent_event (event_id),
    CONSTRAINT fk_streamevent_stream FOREIGN KEY (stream_id) REFERENCES stream (id) ON DELETE CASCADE,
    CONSTRAINT fk_streamevent_event FOREIGN KEY (event_id) REFERENCES event (id) ON DELETE CASCADE
) ENGINE=InnoDB;
