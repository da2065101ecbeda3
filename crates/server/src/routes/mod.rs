//! Route groups, one file each.

pub mod health;
pub mod objects;
