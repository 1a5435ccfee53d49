//! Exact decimals: SQL Server's `decimal(38, s)`, `money` and `smallmoney` carried without loss.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::proto;

/// The most digits SQL Server's `decimal` holds.
pub const MAX_PRECISION: u32 = 38;
const MAX_UNSCALED: i128 = 10i128.pow(MAX_PRECISION) - 1;

/// `unscaled × 10^-scale`, with at most 38 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    unscaled: i128,
    scale: u32,
}

impl Decimal {
    /// A decimal from its unscaled value and scale; at most 38 digits, scale at most 38.
    pub fn new(unscaled: i128, scale: u32) -> Result<Decimal> {
        if scale > MAX_PRECISION {
            return Err(Error::InvalidDecimal(format!("scale {scale} is above 38")));
        }
        if !(-MAX_UNSCALED..=MAX_UNSCALED).contains(&unscaled) {
            return Err(Error::InvalidDecimal(format!(
                "{unscaled} has more than 38 digits"
            )));
        }
        Ok(Decimal { unscaled, scale })
    }

    /// The unscaled integer.
    pub fn unscaled(&self) -> i128 {
        self.unscaled
    }

    /// Digits after the point.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The same number with exactly `scale` fractional digits, if that loses nothing and fits.
    pub fn with_scale(&self, scale: u32) -> Result<Decimal> {
        if scale >= self.scale {
            let factor = 10i128.checked_pow(scale - self.scale).ok_or_else(|| {
                Error::InvalidDecimal(format!("cannot widen {self} to scale {scale}"))
            })?;
            let unscaled = self.unscaled.checked_mul(factor).ok_or_else(|| {
                Error::InvalidDecimal(format!("{self} at scale {scale} has more than 38 digits"))
            })?;
            Decimal::new(unscaled, scale)
        } else {
            let factor = 10i128.pow(self.scale - scale);
            if self.unscaled % factor != 0 {
                return Err(Error::InvalidDecimal(format!(
                    "{self} does not fit scale {scale} exactly"
                )));
            }
            Decimal::new(self.unscaled / factor, scale)
        }
    }

    /// Reads the protobuf form (big-endian two's complement, minimal length).
    pub fn from_proto(decimal: &proto::Decimal) -> Result<Decimal> {
        let bytes = &decimal.unscaled;
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(Error::InvalidDecimal(format!(
                "unscaled value of {} bytes",
                bytes.len()
            )));
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
        let mut full = [fill; 16];
        full[16 - bytes.len()..].copy_from_slice(bytes);
        Decimal::new(i128::from_be_bytes(full), decimal.scale)
    }

    /// The protobuf form (big-endian two's complement, minimal length).
    pub fn to_proto(&self) -> proto::Decimal {
        let bytes = self.unscaled.to_be_bytes();
        // Drop leading bytes that only repeat the sign of the byte after them.
        let mut start = 0;
        while start < 15 {
            let (lead, next) = (bytes[start], bytes[start + 1]);
            if (lead == 0x00 && next & 0x80 == 0) || (lead == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        proto::Decimal {
            unscaled: bytes[start..].to_vec(),
            scale: self.scale,
        }
    }
}

impl fmt::Display for Decimal {
    /// Plain notation with exactly `scale` fractional digits, `-` only below zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.unscaled.unsigned_abs().to_string();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses `-123.4500` (plain notation; the scale is the number of fractional digits).
    fn from_str(text: &str) -> Result<Decimal> {
        let bad = || Error::InvalidDecimal(format!("`{text}` is not a plain decimal number"));
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_PRECISION as usize {
            return Err(Error::InvalidDecimal(format!(
                "`{text}` has more than 38 digits"
            )));
        }
        let magnitude: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        let scale = u32::try_from(fraction.len()).map_err(|_| bad())?;
        Decimal::new(if negative { -magnitude } else { magnitude }, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_with_exactly_its_scale() {
        assert_eq!(Decimal::new(123_400, 4).unwrap().to_string(), "12.3400");
        assert_eq!(Decimal::new(-5, 3).unwrap().to_string(), "-0.005");
        assert_eq!(Decimal::new(0, 2).unwrap().to_string(), "0.00");
        assert_eq!(Decimal::new(7, 0).unwrap().to_string(), "7");
    }

    #[test]
    fn refuses_more_than_38_digits() {
        assert!(Decimal::new(10i128.pow(38), 0).is_err());
        assert!(Decimal::new(10i128.pow(38) - 1, 38).is_ok());
        assert!(
            "123456789012345678901234567890123456789"
                .parse::<Decimal>()
                .is_err()
        );
    }

    #[test]
    fn rescaling_is_exact_or_refused() {
        let d: Decimal = "1.5".parse().unwrap();
        assert_eq!(d.with_scale(4).unwrap().to_string(), "1.5000");
        assert_eq!(
            "1.5000".parse::<Decimal>().unwrap().with_scale(1).unwrap(),
            d
        );
        assert!("1.55".parse::<Decimal>().unwrap().with_scale(1).is_err());
    }

    #[test]
    fn the_protobuf_form_is_minimal_twos_complement() {
        assert_eq!(Decimal::new(0, 0).unwrap().to_proto().unscaled, vec![0x00]);
        assert_eq!(
            Decimal::new(127, 0).unwrap().to_proto().unscaled,
            vec![0x7f]
        );
        assert_eq!(
            Decimal::new(128, 0).unwrap().to_proto().unscaled,
            vec![0x00, 0x80]
        );
        assert_eq!(Decimal::new(-1, 0).unwrap().to_proto().unscaled, vec![0xff]);
        assert_eq!(
            Decimal::new(-129, 0).unwrap().to_proto().unscaled,
            vec![0xff, 0x7f]
        );
    }
}
