//! The opsg record contract and what every opsg binary shares.
//!
//! Every stage of the pipe `opsg-scrape | opsg-triage | … | opsg-audit` reads and writes *sealed
//! records*: one JSON object per line whose last two members are the hash of the previous record
//! and its own SHA-256 over its exact bytes ([`seal`]). This crate owns:
//!
//! - [`record`]: the envelope every record carries (schema id, kind, ids, producer, times, evidence);
//! - [`kinds`]: the typed body of each kind, in pipeline order;
//! - [`seal`]: the hashing and linking algorithm (specified in `schemas/HASHING.md`);
//! - [`schema`]: the JSON Schemas in `schemas/`, embedded and compiled once per process;
//! - [`ledger`]: the ledger line format and the one verifying reader every tool uses;
//! - [`stream`]: reading a record stream from stdin with bounds, and writing the pass-through chain;
//! - [`error`] and [`exit`]: one error type and one exit-code table for every binary;
//! - [`cli`]: the shared `main` (broken pipes, `NO_COLOR`, error printing);
//! - [`time`], [`hmac`], [`evidence`], [`progress`]: small shared utilities.

pub mod cli;
pub mod error;
pub mod evidence;
pub mod exit;
pub mod float;
pub mod hmac;
pub mod kinds;
pub mod ledger;
pub mod progress;
pub mod record;
pub mod schema;
pub mod seal;
pub mod stream;
pub mod time;

pub use error::{Error, Result};
pub use exit::{ExitStatus, Outcome};
pub use record::{Envelope, Kind, Producer, Record};
