//! yagi: the ingest worker (yagi-event): yagi.conf, AMQP and file sources, the handler chain, quarantine, ack-after-durable.
