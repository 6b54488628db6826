//! Typed identifiers: a run, a workspace, a GitHub App installation, a pull request. Each is
//! its own type, so that one cannot be passed where another is meant, and each is the number
//! the store and GitHub use (serialized and stored as that number, unchanged).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $shown:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($shown, "{}"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }
    };
}

id!(
    /// A run, as the store numbers them.
    RunId,
    ""
);
id!(
    /// A workspace, as the store numbers them.
    WorkspaceId,
    ""
);
id!(
    /// A GitHub App installation, as GitHub numbers them.
    InstallationId,
    ""
);
id!(
    /// A pull request's number in its repository.
    PrNumber,
    ""
);

/// A commit, by its SHA (hex, as GitHub names it). Reads as a `&str` wherever one is wanted.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct CommitSha(pub String);

impl CommitSha {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CommitSha {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CommitSha {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CommitSha {
    fn from(sha: String) -> Self {
        CommitSha(sha)
    }
}

impl From<&str> for CommitSha {
    fn from(sha: &str) -> Self {
        CommitSha(sha.to_string())
    }
}

impl PartialEq<str> for CommitSha {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CommitSha {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CommitSha {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_number_in_json_and_in_text() {
        assert_eq!(serde_json::to_string(&RunId(7)).unwrap(), "7");
        assert_eq!(
            serde_json::from_str::<PrNumber>("12").unwrap(),
            PrNumber(12)
        );
        assert_eq!("42".parse::<RunId>().unwrap(), RunId(42));
        assert_eq!(RunId(42).to_string(), "42");
        assert_eq!(PrNumber(3).to_string(), "3");
        let sha = CommitSha::from("abc");
        assert_eq!(serde_json::to_string(&sha).unwrap(), r#""abc""#);
        assert_eq!(sha, "abc");
        assert_eq!(&*sha, "abc");
    }
}
