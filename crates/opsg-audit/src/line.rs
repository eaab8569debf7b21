//! The ledger line (`schemas/HASHING.md`, section 5): building one, and taking one apart at fixed
//! offsets without a JSON parser, so a verifier runs at hashing speed.
//!
//! ```text
//! {"ledger":"opsg.ledger/v1","seq":<S>,"appended":"<T>","record":<R>,"prev":"<P>","hash":"<H>"}
//! ```
//!
//! The one implementation is [`opsg_core::ledger`], which opsg-triage, opsg-plan and opsg-gate read
//! ledgers with too; this module names it where `opsg-audit` has always had it.

pub use opsg_core::ledger::{
    LEDGER_ID, LineFacts, LineFault, LineParts, ShapeError, build, examine, parse,
};

#[cfg(test)]
mod tests {
    use super::*;
    use opsg_core::seal::{self, GENESIS};

    #[test]
    fn the_worked_example_in_hashing_md_holds() {
        // HASHING.md section 7 quotes these bytes: the spec and the code cannot drift apart.
        let record = seal::seal(format!("{{\"a\":1,\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap();
        assert_eq!(
            record.1.as_str(),
            "377e001479caf256112dd83b12144e8c782371b3b8fd00555725ed20c0550048"
        );
        let (line, hash) = build(1, "2026-01-01T00:00:00.000Z", &record.0, GENESIS);
        let expected = format!(
            "{{\"ledger\":\"opsg.ledger/v1\",\"seq\":1,\"appended\":\"2026-01-01T00:00:00.000Z\",\
             \"record\":{},\"prev\":\"{GENESIS}\",\"hash\":\"{hash}\"}}",
            String::from_utf8(record.0.clone()).unwrap()
        );
        assert_eq!(String::from_utf8(line).unwrap(), expected);
        assert_eq!(
            hash.as_str(),
            "8b305883592eef2cee973006f9cf5c87ab0c9f43ec339b0014ba6085ed2c1313"
        );
    }
}
