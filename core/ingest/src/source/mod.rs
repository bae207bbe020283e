//! Sources of raw notifications for the chain: [`amqp`] (RabbitMQ, push consumption,
//! reconnect) and [`file`] (JSON lines from a file with a durable offset checkpoint, or
//! stdin).

pub mod amqp;
pub mod file;
