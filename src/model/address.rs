//! `Address`: a resource's name within a stack, `TYPE.NAME`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `TYPE.NAME`, e.g. `sim_role.exec`. Ordered by type, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub type_name: String,
    pub name: String,
}

impl Address {
    pub fn new(type_name: impl Into<String>, name: impl Into<String>) -> Address {
        Address {
            type_name: type_name.into(),
            name: name.into(),
        }
    }

    /// The provider prefix of the type: `sim` for `sim_role`.
    pub fn provider(&self) -> &str {
        self.type_name.split('_').next().unwrap_or(&self.type_name)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.type_name, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressParseError(pub String);

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an address of the form TYPE.NAME", self.0)
    }
}

impl std::error::Error for AddressParseError {}

/// A valid identifier: ASCII letter or `_` first, then letters, digits, `_`, `-`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl FromStr for Address {
    type Err = AddressParseError;
    fn from_str(s: &str) -> Result<Address, AddressParseError> {
        match s.split_once('.') {
            Some((t, n)) if is_identifier(t) && is_identifier(n) && t.contains('_') => {
                Ok(Address::new(t, n))
            }
            _ => Err(AddressParseError(s.to_string())),
        }
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let a: Address = "sim_role.exec".parse().unwrap();
        assert_eq!(a.type_name, "sim_role");
        assert_eq!(a.name, "exec");
        assert_eq!(a.provider(), "sim");
        assert_eq!(a.to_string(), "sim_role.exec");
        assert!("nodot".parse::<Address>().is_err());
        assert!("role.x".parse::<Address>().is_err());
        assert!("sim_role.".parse::<Address>().is_err());
    }
}
