//! The local tiers: memory (L1) and disk (L2).

pub mod disk;
pub mod memory;
pub mod object;
