//! SQL Server log sequence numbers: `binary(10)`, ordered as big-endian bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A SQL Server LSN (or `__$seqval`, which has the same form). The derived order is the
/// lexicographic order of the bytes, which is SQL Server's order for `binary(10)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn([u8; 10]);

const MAX_VALUE: u128 = (1u128 << 80) - 1;

impl Lsn {
    /// The smallest LSN, `00000000:00000000:0000`.
    pub const ZERO: Lsn = Lsn([0; 10]);
    /// The largest LSN, `ffffffff:ffffffff:ffff`.
    pub const MAX: Lsn = Lsn([0xff; 10]);

    /// Wraps 10 bytes as read from SQL Server.
    pub const fn new(bytes: [u8; 10]) -> Lsn {
        Lsn(bytes)
    }

    /// Reads an LSN from a byte slice; it must be exactly 10 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Lsn> {
        <[u8; 10]>::try_from(bytes)
            .map(Lsn)
            .map_err(|_| Error::InvalidLsn(format!("expected 10 bytes, got {}", bytes.len())))
    }

    /// The 10 bytes, big-endian.
    pub const fn as_bytes(&self) -> &[u8; 10] {
        &self.0
    }

    /// The LSN as an 80-bit unsigned integer.
    pub fn to_u128(self) -> u128 {
        self.0
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
    }

    /// The LSN with the given 80-bit integer value; None above 2^80 - 1.
    pub fn from_u128(value: u128) -> Option<Lsn> {
        if value > MAX_VALUE {
            return None;
        }
        let mut bytes = [0u8; 10];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (value >> (8 * (9 - i))) as u8;
        }
        Some(Lsn(bytes))
    }

    /// The next LSN, as `sys.fn_cdc_increment_lsn` computes it; None after [`Lsn::MAX`].
    pub fn increment(self) -> Option<Lsn> {
        Lsn::from_u128(self.to_u128().checked_add(1)?)
    }

    /// The previous LSN, as `sys.fn_cdc_decrement_lsn` computes it; None before [`Lsn::ZERO`].
    pub fn decrement(self) -> Option<Lsn> {
        Lsn::from_u128(self.to_u128().checked_sub(1)?)
    }

    /// `0x`-prefixed upper-case hex, as SQL Server prints `binary(10)`.
    pub fn to_hex_literal(self) -> String {
        format!("0x{}", hex::encode_upper(self.0))
    }
}

impl fmt::Display for Lsn {
    /// SQL Server's textual form: VLF sequence, log block, slot (`0000002a:00000758:0005`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let vlf = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let block = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let slot = u16::from_be_bytes([b[8], b[9]]);
        write!(f, "{vlf:08x}:{block:08x}:{slot:04x}")
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

impl FromStr for Lsn {
    type Err = Error;

    /// Accepts `0000002a:00000758:0005` and `0x0000002A000007580005` (case-insensitive).
    fn from_str(text: &str) -> Result<Lsn> {
        let bad = || {
            Error::InvalidLsn(format!(
                "`{text}` is neither `xxxxxxxx:xxxxxxxx:xxxx` nor `0x` + 20 hex digits"
            ))
        };
        let digits: String =
            if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                hex.to_owned()
            } else {
                let parts: Vec<&str> = text.split(':').collect();
                match parts.as_slice() {
                    [vlf, block, slot] if vlf.len() == 8 && block.len() == 8 && slot.len() == 4 => {
                        format!("{vlf}{block}{slot}")
                    }
                    _ => return Err(bad()),
                }
            };
        if digits.len() != 20 {
            return Err(bad());
        }
        let bytes = hex::decode(&digits).map_err(|_| bad())?;
        Lsn::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_sql_server() {
        let lsn = Lsn::new([0, 0, 0, 0x2a, 0, 0, 0x07, 0x58, 0, 0x05]);
        assert_eq!(lsn.to_string(), "0000002a:00000758:0005");
        assert_eq!(lsn.to_hex_literal(), "0x0000002A000007580005");
        assert_eq!("0x0000002a000007580005".parse::<Lsn>().unwrap(), lsn);
        assert_eq!("0000002a:00000758:0005".parse::<Lsn>().unwrap(), lsn);
    }

    #[test]
    fn rejects_malformed_text_and_lengths() {
        assert!("0x00".parse::<Lsn>().is_err());
        assert!("2a:758:5".parse::<Lsn>().is_err());
        assert!("0x0000002a00000758000g".parse::<Lsn>().is_err());
        assert!(Lsn::from_bytes(&[0; 9]).is_err());
    }

    #[test]
    fn increment_carries_across_bytes_and_stops_at_the_ends() {
        let lsn = Lsn::new([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            lsn.increment().unwrap().to_string(),
            "00000002:00000000:0000"
        );
        assert_eq!(Lsn::MAX.increment(), None);
        assert_eq!(Lsn::ZERO.decrement(), None);
    }
}
