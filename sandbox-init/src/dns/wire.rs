//! TEMPORARY STUB (replaced by the w3-wire branch's parser on merge).
#![allow(dead_code, missing_docs)]
use std::net::IpAddr;
pub const MAX_MESSAGE: usize = 65535;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode { ServFail = 2, NxDomain = 3, Refused = 5 }
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct WireError;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);
impl std::fmt::Display for Name { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
#[derive(Debug, Clone)]
pub struct Query { pub id: u16, pub name: Name, pub qtype: u16 }
pub fn parse_query(_m: &[u8]) -> Result<Query, WireError> { Err(WireError) }
pub fn refusal(_m: &[u8], _q: &Query, _r: Rcode) -> Vec<u8> { Vec::new() }
#[derive(Debug, Clone)]
pub struct Response { pub id: u16, pub rcode: u8, pub truncated: bool, pub addrs: Vec<(IpAddr, u32)> }
pub fn parse_response(_m: &[u8]) -> Result<Response, WireError> { Err(WireError) }
pub fn answers(q: &Query, r: &Response) -> bool { q.id == r.id }
