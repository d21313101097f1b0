//! Layer 4, what the owner and apps do: grants and their policies, pairing, consent, access and
//! refresh tokens and request proofs, credentials, master-key rotation, the owner and passkeys,
//! host approvals and prices. The handlers and the CLI call these; they know no HTTP routing.

pub mod consent;
pub mod credentials;
pub mod grant_policy;
pub mod grants;
pub mod hosts;
pub mod master_key;
pub mod owner;
pub mod pairing;
pub mod passkeys;
pub mod prices;
pub mod proof;
pub mod tokens;
pub mod usage;
