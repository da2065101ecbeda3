//! Route groups, one file each.

pub mod admin;
pub mod audit;
pub mod health;
pub mod leakage;
pub mod objects;
