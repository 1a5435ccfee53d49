//! Where a change sits in SQL Server's change stream, and the order of changes.

use std::fmt;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::proto;

/// A change's position: ordered by commit LSN, then statement (`__$command_id`), then
/// `__$seqval`, then `__$operation` — the order production readers use (within one update,
/// the before image, operation 3, sorts before the after image, 4).
///
/// A snapshot read at LSN `L` sits at `(L, 0, 0, 0)`: before every change committed after `L`,
/// and after every change committed at or before `L` (whose effects the snapshot already shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourcePosition {
    /// `__$start_lsn`: the commit LSN of the transaction.
    pub commit_lsn: Lsn,
    /// `__$command_id`: statement order within the transaction.
    pub command_id: i32,
    /// `__$seqval`: order of the row change within the transaction.
    pub seqval: Lsn,
    /// `__$operation` (1 delete, 2 insert, 3 update before, 4 update after; 0 snapshot read).
    pub operation: i32,
}

impl fmt::Display for SourcePosition {
    /// `commit_lsn:command_id:seqval:operation`, as status and dead letters show positions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.commit_lsn, self.command_id, self.seqval, self.operation
        )
    }
}

impl SourcePosition {
    /// The position of a snapshot read consistent at `lsn`.
    pub const fn snapshot(lsn: Lsn) -> SourcePosition {
        SourcePosition {
            commit_lsn: lsn,
            command_id: 0,
            seqval: Lsn::ZERO,
            operation: 0,
        }
    }

    /// Whether an event at `self` may overwrite a row last written at `previous`: only a
    /// strictly newer position may (the row guard that keeps re-snapshots from regressing rows).
    pub fn supersedes(&self, previous: &SourcePosition) -> bool {
        self > previous
    }

    /// Reads a position from its protobuf form.
    pub fn from_proto(position: &proto::SourcePosition) -> Result<SourcePosition> {
        let operation = position.operation;
        if !(0..=4).contains(&operation) {
            return Err(Error::InvalidValue(format!(
                "source position operation {operation} is not 0..=4"
            )));
        }
        Ok(SourcePosition {
            commit_lsn: Lsn::from_bytes(&position.commit_lsn)?,
            command_id: position.command_id,
            seqval: Lsn::from_bytes(&position.seqval)?,
            operation,
        })
    }

    /// Length of [`SourcePosition::to_ordered_bytes`].
    pub const ORDERED_LEN: usize = 25;

    /// A byte string whose lexicographic (memcmp) order is the positions' order, so that a
    /// database can compare positions as plain `bytea`: commit LSN, command id with its sign bit
    /// flipped (big-endian), seqval, operation.
    pub fn to_ordered_bytes(&self) -> [u8; Self::ORDERED_LEN] {
        let mut out = [0u8; Self::ORDERED_LEN];
        out[..10].copy_from_slice(self.commit_lsn.as_bytes());
        out[10..14].copy_from_slice(&((self.command_id as u32) ^ 0x8000_0000).to_be_bytes());
        out[14..24].copy_from_slice(self.seqval.as_bytes());
        // Operations are 0..=4 (checked on every way in), so one byte holds them.
        out[24] = self.operation as u8;
        out
    }

    /// Reads bytes made by [`SourcePosition::to_ordered_bytes`].
    pub fn from_ordered_bytes(bytes: &[u8]) -> Result<SourcePosition> {
        if bytes.len() != Self::ORDERED_LEN || bytes[24] > 4 {
            return Err(Error::InvalidValue(format!(
                "an ordered source position is {} bytes ending in an operation 0..=4, got {} bytes",
                Self::ORDERED_LEN,
                bytes.len()
            )));
        }
        let mut command = [0u8; 4];
        command.copy_from_slice(&bytes[10..14]);
        Ok(SourcePosition {
            commit_lsn: Lsn::from_bytes(&bytes[..10])?,
            command_id: (u32::from_be_bytes(command) ^ 0x8000_0000) as i32,
            seqval: Lsn::from_bytes(&bytes[14..24])?,
            operation: i32::from(bytes[24]),
        })
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> proto::SourcePosition {
        proto::SourcePosition {
            commit_lsn: self.commit_lsn.as_bytes().to_vec(),
            seqval: self.seqval.as_bytes().to_vec(),
            command_id: self.command_id,
            operation: self.operation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(n: u128) -> Lsn {
        Lsn::from_u128(n).unwrap()
    }

    #[test]
    fn a_snapshot_at_l_sorts_between_changes_at_l_and_after_l() {
        let at_l = SourcePosition {
            commit_lsn: lsn(10),
            command_id: 1,
            seqval: lsn(3),
            operation: 2,
        };
        let after_l = SourcePosition {
            commit_lsn: lsn(11),
            command_id: 0,
            seqval: lsn(1),
            operation: 1,
        };
        let snapshot = SourcePosition::snapshot(lsn(10));
        assert!(
            snapshot < at_l,
            "within commit L, a snapshot row sorts first"
        );
        assert!(after_l.supersedes(&snapshot));
        assert!(!snapshot.supersedes(&after_l));
    }

    #[test]
    fn within_a_transaction_the_statement_orders_before_the_seqval() {
        let first_statement = SourcePosition {
            commit_lsn: lsn(5),
            command_id: 1,
            seqval: lsn(9),
            operation: 2,
        };
        let second_statement = SourcePosition {
            commit_lsn: lsn(5),
            command_id: 2,
            seqval: lsn(8),
            operation: 2,
        };
        assert!(first_statement < second_statement);
    }

    #[test]
    fn an_update_before_image_sorts_before_its_after_image() {
        let before = SourcePosition {
            commit_lsn: lsn(5),
            command_id: 1,
            seqval: lsn(9),
            operation: 3,
        };
        let after = SourcePosition {
            operation: 4,
            ..before
        };
        assert!(before < after);
        assert!(
            !before.supersedes(&before),
            "an equal position is not newer"
        );
    }

    #[test]
    fn bad_protobuf_positions_are_refused() {
        let good = SourcePosition::snapshot(lsn(1)).to_proto();
        assert!(
            SourcePosition::from_proto(&proto::SourcePosition {
                commit_lsn: vec![1, 2],
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            SourcePosition::from_proto(&proto::SourcePosition {
                operation: 7,
                ..good
            })
            .is_err()
        );
    }
}
