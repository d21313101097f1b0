//! Property tests: globs against a reference matcher, the policy order and `narrow`, GCRA, reservations, windows, cost.

mod globs;
mod grants;
mod limits;
