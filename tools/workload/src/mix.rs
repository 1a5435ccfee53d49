//! The operation mix: how often each kind of change is chosen (`insert=60,update=25,...`).

use std::fmt;
use std::str::FromStr;

use crate::rng::Rng;

/// A kind of row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// A new row.
    Insert,
    /// New values for non-key columns.
    Update,
    /// A row removed.
    Delete,
    /// A primary-key update: the row moves to a new key (CDC records it as delete + insert).
    KeyUpdate,
}

impl Operation {
    /// Every operation, in the order the mix is written.
    pub const ALL: [Operation; 4] = [
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
        Operation::KeyUpdate,
    ];

    /// The name used in `--mix` and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::KeyUpdate => "key_update",
        }
    }
}

/// Relative weights of the four operations; at least one is above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 4],
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            weights: [60, 25, 10, 5],
        }
    }
}

/// Why a `--mix` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// A part is not `name=weight`.
    #[error("`{0}` is not name=weight")]
    NotAPair(String),
    /// An unknown operation name.
    #[error("unknown operation `{0}` (expected insert, update, delete, key_update)")]
    UnknownOperation(String),
    /// A weight that is not a whole number.
    #[error("weight `{0}` is not a whole number")]
    BadWeight(String),
    /// An operation named twice.
    #[error("`{0}` is given twice")]
    Repeated(String),
    /// Every weight zero.
    #[error("every weight is zero")]
    AllZero,
}

impl Mix {
    /// A mix of the given weights, in the order of [`Operation::ALL`].
    pub fn new(weights: [u32; 4]) -> Result<Mix, MixError> {
        if weights.iter().all(|w| *w == 0) {
            return Err(MixError::AllZero);
        }
        Ok(Mix { weights })
    }

    /// The weight of `operation`.
    pub fn weight(&self, operation: Operation) -> u32 {
        self.weights[operation as usize]
    }

    /// An operation drawn by weight.
    pub fn pick(&self, rng: &mut Rng) -> Operation {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        let mut draw = rng.below(total);
        for operation in Operation::ALL {
            let weight = u64::from(self.weight(operation));
            if draw < weight {
                return operation;
            }
            draw -= weight;
        }
        Operation::Insert
    }
}

impl FromStr for Mix {
    type Err = MixError;

    /// `insert=60,update=25,delete=10,key_update=5`; operations left out weigh zero.
    fn from_str(text: &str) -> Result<Mix, MixError> {
        let mut weights: [Option<u32>; 4] = [None; 4];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| MixError::NotAPair(part.to_owned()))?;
            let operation = Operation::ALL
                .into_iter()
                .find(|o| o.name() == name.trim())
                .ok_or_else(|| MixError::UnknownOperation(name.trim().to_owned()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| MixError::BadWeight(weight.trim().to_owned()))?;
            let slot = &mut weights[operation as usize];
            if slot.replace(weight).is_some() {
                return Err(MixError::Repeated(operation.name().to_owned()));
            }
        }
        Mix::new(weights.map(|w| w.unwrap_or(0)))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Operation::ALL
            .iter()
            .map(|o| format!("{}={}", o.name(), self.weight(*o)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_parses_and_prints_back() {
        let mix: Result<Mix, _> = "insert=60, update=25,delete=10,key_update=5".parse();
        assert_eq!(mix, Ok(Mix::default()));
        assert_eq!(
            Mix::default().to_string(),
            "insert=60,update=25,delete=10,key_update=5"
        );
        assert_eq!("insert=1".parse(), Mix::new([1, 0, 0, 0]));
    }

    #[test]
    fn bad_mixes_say_what_is_wrong() {
        assert_eq!(
            "insert".parse::<Mix>(),
            Err(MixError::NotAPair("insert".into()))
        );
        assert_eq!(
            "upsert=3".parse::<Mix>(),
            Err(MixError::UnknownOperation("upsert".into()))
        );
        assert_eq!(
            "insert=-1".parse::<Mix>(),
            Err(MixError::BadWeight("-1".into()))
        );
        assert_eq!(
            "insert=1,insert=2".parse::<Mix>(),
            Err(MixError::Repeated("insert".into()))
        );
        assert_eq!("insert=0,delete=0".parse::<Mix>(), Err(MixError::AllZero));
        assert_eq!("".parse::<Mix>(), Err(MixError::AllZero));
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::default();
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[mix.pick(&mut rng) as usize] += 1;
        }
        // 6000/2500/1000/500 expected; a generous band, the generator is seeded.
        for (count, expected) in counts.iter().zip([6000, 2500, 1000, 500]) {
            assert!(count.abs_diff(expected) < expected / 5, "{counts:?}");
        }
        let only_deletes = Mix::new([0, 0, 1, 0]).unwrap_or_default();
        assert!((0..100).all(|_| only_deletes.pick(&mut rng) == Operation::Delete));
    }
}
