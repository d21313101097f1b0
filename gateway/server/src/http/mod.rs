//! Layer 6, the only layer that knows HTTP serving: the route table and thin handlers
//! (`routes`), the app and owner extractors, the accept loop, TLS, start-up and logging.

pub mod conn;
pub mod domain_errors;
pub mod extract;
pub mod owner_session;
pub mod routes;
pub mod serve;
pub mod spread;
pub mod telemetry;
pub mod tls;
