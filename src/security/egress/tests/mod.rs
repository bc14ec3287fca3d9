//! Tests of the egress policy core, one file per module, through its public
//! interface.

mod address;
mod allowance;
mod grants;
mod parse;
mod pattern;

use super::HostPattern;

/// Parses patterns written in a test.
fn patterns(texts: &[&str]) -> Vec<HostPattern> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}
