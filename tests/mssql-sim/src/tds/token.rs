//! Writers for the tokens of a tabular result (the server's side of TDS 7.4).

use super::types::{SqlType, SqlValue};

/// DONE status bits.
pub mod done_status {
    /// More results follow in this response.
    pub const MORE: u16 = 0x0001;
    /// The statement failed.
    pub const ERROR: u16 = 0x0002;
    /// The row count is valid.
    pub const COUNT: u16 = 0x0010;
    /// Acknowledges an ATTENTION.
    pub const ATTENTION: u16 = 0x0020;
}

/// `curcmd` values of DONE tokens.
pub mod command {
    /// SELECT.
    pub const SELECT: u16 = 0xc1;
    /// INSERT.
    pub const INSERT: u16 = 0xc3;
    /// DELETE.
    pub const DELETE: u16 = 0xc4;
    /// UPDATE.
    pub const UPDATE: u16 = 0xc5;
    /// EXECUTE (procedure calls).
    pub const EXECUTE: u16 = 0xe0;
    /// Anything else.
    pub const OTHER: u16 = 0x00;
}

/// The default collation: SQL_Latin1_General_CP1_CI_AS (LCID 0x0409, sort id 52, code page
/// 1252).
pub const COLLATION: [u8; 5] = [0x09, 0x04, 0xd0, 0x00, 0x34];

/// A SQL Server message for an ERROR or INFO token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// Message number, e.g. 208.
    pub number: i32,
    /// State.
    pub state: u8,
    /// Severity class (errors are 11 and up).
    pub class: u8,
    /// Text.
    pub text: String,
}

/// One column of a result set.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumn {
    /// Name (empty for unnamed expressions).
    pub name: String,
    /// Exact SQL Server type.
    pub sql_type: SqlType,
    /// Whether NULL may appear.
    pub nullable: bool,
}

/// Accumulates tokens of one response.
#[derive(Debug, Default)]
pub struct TokenWriter {
    bytes: Vec<u8>,
}

impl TokenWriter {
    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// ENVCHANGE with string values (database 1, language 2, packet size 4).
    pub fn env_change(&mut self, kind: u8, new: &str, old: &str) {
        let mut body = vec![kind];
        b_varchar(&mut body, new);
        b_varchar(&mut body, old);
        self.with_u16_length(0xe3, &body);
    }

    /// ENVCHANGE of the collation (7).
    pub fn collation_change(&mut self) {
        let mut body = vec![7, COLLATION.len() as u8];
        body.extend_from_slice(&COLLATION);
        body.push(0);
        self.with_u16_length(0xe3, &body);
    }

    /// INFO (class below 11) or ERROR.
    pub fn message(&mut self, message: &ServerMessage) {
        let token = if message.class > 10 { 0xaa } else { 0xab };
        let mut body = Vec::new();
        body.extend_from_slice(&message.number.to_le_bytes());
        body.push(message.state);
        body.push(message.class);
        us_varchar(&mut body, &message.text);
        b_varchar(&mut body, "mssql-sim");
        b_varchar(&mut body, "");
        body.extend_from_slice(&1i32.to_le_bytes());
        self.with_u16_length(token, &body);
    }

    /// LOGINACK for TDS 7.4.
    pub fn login_ack(&mut self) {
        let mut body = vec![1];
        body.extend_from_slice(&0x7400_0004u32.to_be_bytes());
        b_varchar(&mut body, "Microsoft SQL Server");
        body.extend_from_slice(&[16, 0, 0x03, 0xe8]);
        self.with_u16_length(0xad, &body);
    }

    /// DONE (0xFD), DONEPROC (0xFE) or DONEINPROC (0xFF).
    pub fn done(&mut self, token: u8, status: u16, command: u16, rows: u64) {
        self.bytes.push(token);
        self.bytes.extend_from_slice(&status.to_le_bytes());
        self.bytes.extend_from_slice(&command.to_le_bytes());
        self.bytes.extend_from_slice(&rows.to_le_bytes());
    }

    /// RETURNSTATUS.
    pub fn return_status(&mut self, status: i32) {
        self.bytes.push(0x79);
        self.bytes.extend_from_slice(&status.to_le_bytes());
    }

    /// COLMETADATA.
    pub fn column_metadata(&mut self, columns: &[ResultColumn]) {
        self.bytes.push(0x81);
        self.bytes
            .extend_from_slice(&(columns.len() as u16).to_le_bytes());
        for column in columns {
            self.bytes.extend_from_slice(&0u32.to_le_bytes());
            let flags: u16 = if column.nullable { 0x0001 } else { 0x0000 } | 0x0008;
            self.bytes.extend_from_slice(&flags.to_le_bytes());
            column.sql_type.write_type_info(&mut self.bytes);
            b_varchar(&mut self.bytes, &column.name);
        }
    }

    /// ROW with one value per column, encoded per the column's type.
    pub fn row(&mut self, columns: &[ResultColumn], values: &[SqlValue]) {
        self.bytes.push(0xd1);
        for (column, value) in columns.iter().zip(values) {
            column.sql_type.write_value(value, &mut self.bytes);
        }
    }

    fn with_u16_length(&mut self, token: u8, body: &[u8]) {
        self.bytes.push(token);
        self.bytes
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(body);
    }
}

/// A string with a one-byte length in UTF-16 units.
pub fn b_varchar(out: &mut Vec<u8>, text: &str) {
    let units: Vec<u16> = text.encode_utf16().take(255).collect();
    out.push(units.len() as u8);
    units
        .iter()
        .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
}

/// A string with a two-byte length in UTF-16 units.
pub fn us_varchar(out: &mut Vec<u8>, text: &str) {
    let units: Vec<u16> = text.encode_utf16().take(u16::MAX as usize).collect();
    out.extend_from_slice(&(units.len() as u16).to_le_bytes());
    units
        .iter()
        .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
}
