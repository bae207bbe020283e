//! AMQP plumbing on lapin: connection settings, the notabene publisher (publisher confirms), topology declaration.
