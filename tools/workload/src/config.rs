//! What a run is given: where to connect, and the workload's shape. Plain data, validated once
//! before anything connects; a refused value names its command-line flag.

use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use crate::mix::Mix;

/// Whether the TDS connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encrypt {
    /// No TLS (what the simulator speaks).
    #[default]
    Off,
    /// TLS for the login only, or everything if the server asks for it.
    On,
    /// TLS for everything.
    Required,
}

impl FromStr for Encrypt {
    type Err = String;

    fn from_str(text: &str) -> Result<Encrypt, String> {
        match text {
            "off" => Ok(Encrypt::Off),
            "on" => Ok(Encrypt::On),
            "required" => Ok(Encrypt::Required),
            other => Err(format!("`{other}` is not off, on or required")),
        }
    }
}

/// Where to connect. Holds the password, so it is neither printed nor serialised.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Server host name or address.
    pub host: String,
    /// TDS port.
    pub port: u16,
    /// SQL login.
    pub user: String,
    /// The login's password.
    pub password: SecretString,
    /// Database holding the `shop` tables.
    pub database: String,
    /// TLS mode.
    pub encrypt: Encrypt,
    /// Accept the server's certificate without checking it.
    pub trust_server_certificate: bool,
}

/// The shape of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Target changes per second, committed and rolled back together (`--rate`).
    pub rows_per_s: f64,
    /// How long to run; `None` until cancelled (`--duration-s 0`).
    pub duration: Option<Duration>,
    /// Seed of the value and operation choices (`--seed`).
    pub seed: u64,
    /// The operation mix (`--mix`).
    pub mix: Mix,
    /// Changes per transaction (`--transaction-rows`).
    pub transaction_rows: u32,
    /// Fraction of transactions rolled back on purpose (`--rollback-fraction`).
    pub rollback_fraction: f64,
    /// How often a progress line goes to stderr (`--report-interval-s`).
    pub report_interval: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            rows_per_s: 100.0,
            duration: Some(Duration::from_secs(60)),
            seed: 1,
            mix: Mix::default(),
            transaction_rows: 10,
            rollback_fraction: 0.02,
            report_interval: Duration::from_secs(5),
        }
    }
}

/// A refused setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {flag}: {reason}")]
pub struct ConfigError {
    /// The command-line flag of the setting.
    pub flag: &'static str,
    /// What was expected.
    pub reason: String,
}

impl WorkloadConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |flag, reason: &str| {
            Err(ConfigError {
                flag,
                reason: reason.to_owned(),
            })
        };
        if !(self.rows_per_s.is_finite() && self.rows_per_s > 0.0) {
            return refuse("--rate", "rows per second must be above 0");
        }
        if !(1..=1000).contains(&self.transaction_rows) {
            return refuse("--transaction-rows", "must be from 1 to 1000");
        }
        if !(0.0..=1.0).contains(&self.rollback_fraction) {
            return refuse("--rollback-fraction", "must be from 0 to 1");
        }
        if self.report_interval.is_zero() {
            return refuse("--report-interval-s", "must be at least 1");
        }
        Ok(())
    }
}

/// Parses `--rate`: a number of rows per second above zero.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a number of rows per second above 0"
        )),
    }
}

/// Parses `--rollback-fraction`: a number from 0 to 1.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{text}` is not a fraction from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_name_their_flag() {
        assert_eq!(WorkloadConfig::default().validate(), Ok(()));
        let flag = |config: WorkloadConfig| config.validate().err().map(|e| e.flag);
        let base = WorkloadConfig::default;
        assert_eq!(
            flag(WorkloadConfig {
                rows_per_s: 0.0,
                ..base()
            }),
            Some("--rate")
        );
        assert_eq!(
            flag(WorkloadConfig {
                rows_per_s: f64::NAN,
                ..base()
            }),
            Some("--rate")
        );
        assert_eq!(
            flag(WorkloadConfig {
                transaction_rows: 0,
                ..base()
            }),
            Some("--transaction-rows")
        );
        assert_eq!(
            flag(WorkloadConfig {
                rollback_fraction: 1.5,
                ..base()
            }),
            Some("--rollback-fraction")
        );
    }

    #[test]
    fn flag_values_parse_or_say_why_not() {
        assert_eq!(parse_rate("500"), Ok(500.0));
        assert!(parse_rate("0").is_err() && parse_rate("-1").is_err() && parse_rate("x").is_err());
        assert_eq!(parse_fraction("0.02"), Ok(0.02));
        assert!(parse_fraction("2").is_err());
        assert_eq!("required".parse(), Ok(Encrypt::Required));
        assert!("maybe".parse::<Encrypt>().is_err());
    }
}
