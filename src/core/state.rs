//! Terraform state versions: what Gantry checks before it records the state an apply wrote.
//! A state must continue the workspace's lineage with a newer serial; anything else would
//! overwrite newer infrastructure records with older ones. Pure: no I/O.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What identifies a state version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMeta {
    pub serial: i64,
    pub lineage: String,
    /// SHA-256 of the state file, hex.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state file is not valid Terraform state: {0}")]
    Invalid(String),
    #[error("the new state has serial {new}, not newer than the current {current}")]
    OlderSerial { current: i64, new: i64 },
    #[error("the new state belongs to another lineage ({new}, not {current})")]
    OtherLineage { current: String, new: String },
}

#[derive(Deserialize)]
struct StateHeader {
    serial: i64,
    lineage: String,
}

/// Reads a state file's serial and lineage and checks that it may follow `current`.
pub fn check_new_state(current: Option<&StateMeta>, state: &[u8]) -> Result<StateMeta, StateError> {
    let header: StateHeader =
        serde_json::from_slice(state).map_err(|e| StateError::Invalid(e.to_string()))?;
    if header.lineage.is_empty() {
        return Err(StateError::Invalid("empty lineage".into()));
    }
    if let Some(current) = current {
        if header.lineage != current.lineage {
            return Err(StateError::OtherLineage {
                current: current.lineage.clone(),
                new: header.lineage,
            });
        }
        if header.serial <= current.serial {
            return Err(StateError::OlderSerial {
                current: current.serial,
                new: header.serial,
            });
        }
    }
    Ok(StateMeta {
        serial: header.serial,
        lineage: header.lineage,
        checksum: hex::encode(Sha256::digest(state)),
    })
}

/// How many resources a state manages (data sources manage nothing), or None if the state
/// cannot be read: a caller deciding whether deleting it orphans infrastructure fails closed.
pub fn managed_resources(state: &[u8]) -> Option<usize> {
    let state: serde_json::Value = serde_json::from_slice(state).ok()?;
    let resources = state.get("resources")?.as_array()?;
    Some(
        resources
            .iter()
            .filter(|r| r["mode"].as_str() != Some("data"))
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(serial: i64, lineage: &str) -> Vec<u8> {
        format!(r#"{{"version":4,"terraform_version":"1.0.3","serial":{serial},"lineage":"{lineage}","outputs":{{}},"resources":[]}}"#)
            .into_bytes()
    }

    #[test]
    fn the_first_state_is_accepted_with_its_checksum() {
        let bytes = state(1, "abc");
        let meta = check_new_state(None, &bytes).unwrap();
        assert_eq!((meta.serial, meta.lineage.as_str()), (1, "abc"));
        assert_eq!(meta.checksum, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn a_newer_serial_of_the_same_lineage_follows() {
        let current = check_new_state(None, &state(1, "abc")).unwrap();
        assert_eq!(
            check_new_state(Some(&current), &state(2, "abc"))
                .unwrap()
                .serial,
            2
        );
    }

    #[test]
    fn an_older_or_equal_serial_is_refused() {
        let current = check_new_state(None, &state(5, "abc")).unwrap();
        for serial in [4, 5] {
            assert_eq!(
                check_new_state(Some(&current), &state(serial, "abc")),
                Err(StateError::OlderSerial {
                    current: 5,
                    new: serial
                })
            );
        }
    }

    #[test]
    fn another_lineage_is_refused() {
        let current = check_new_state(None, &state(1, "abc")).unwrap();
        assert!(matches!(
            check_new_state(Some(&current), &state(9, "xyz")),
            Err(StateError::OtherLineage { .. })
        ));
    }

    #[test]
    fn something_that_is_not_state_is_refused() {
        assert!(matches!(
            check_new_state(None, b"{}"),
            Err(StateError::Invalid(_))
        ));
        assert!(matches!(
            check_new_state(None, b"nope"),
            Err(StateError::Invalid(_))
        ));
    }

    #[test]
    fn managed_resources_leave_data_sources_out_and_fail_closed() {
        let cases: [(&str, Option<usize>); 5] = [
            (r#"{"version":4,"resources":[]}"#, Some(0)),
            (
                r#"{"resources":[{"mode":"managed"},{"mode":"data"},{"mode":"managed"}]}"#,
                Some(2),
            ),
            (r#"{"resources":[{"mode":"data"}]}"#, Some(0)),
            (r#"{"version":4}"#, None),
            ("not json", None),
        ];
        for (state, expected) in cases {
            assert_eq!(managed_resources(state.as_bytes()), expected, "{state}");
        }
    }
}
