//! PRELOGIN: the server's answer (version, no encryption, no MARS).

/// Option tokens of a PRELOGIN message.
const VERSION: u8 = 0x00;
const ENCRYPTION: u8 = 0x01;
const INSTOPT: u8 = 0x02;
const THREADID: u8 = 0x03;
const MARS: u8 = 0x04;
const TERMINATOR: u8 = 0xff;
/// ENCRYPT_NOT_SUP: the simulator has no TLS; clients must not require encryption.
const ENCRYPT_NOT_SUPPORTED: u8 = 0x02;

/// The PRELOGIN response: SQL Server 2022's version (16.0.1000), encryption not supported.
pub fn response() -> Vec<u8> {
    let options: [(u8, &[u8]); 5] = [
        (VERSION, &[16, 0, 0x03, 0xe8, 0, 0]),
        (ENCRYPTION, &[ENCRYPT_NOT_SUPPORTED]),
        (INSTOPT, &[0]),
        (THREADID, &[]),
        (MARS, &[0]),
    ];
    let table_len = options.len() * 5 + 1;
    let mut table = Vec::with_capacity(table_len);
    let mut data = Vec::new();
    for (token, value) in options {
        let offset = (table_len + data.len()) as u16;
        table.push(token);
        table.extend_from_slice(&offset.to_be_bytes());
        table.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    table.push(TERMINATOR);
    table.extend_from_slice(&data);
    table
}

/// Whether the client's PRELOGIN insists on encryption (ENCRYPT_REQ), which the simulator
/// cannot give.
pub fn client_requires_encryption(payload: &[u8]) -> bool {
    let mut at = 0;
    while at + 5 <= payload.len() && payload[at] != TERMINATOR {
        if payload[at] == ENCRYPTION {
            let offset = usize::from(u16::from_be_bytes([payload[at + 1], payload[at + 2]]));
            return payload.get(offset).is_some_and(|mode| *mode == 0x03);
        }
        at += 5;
    }
    false
}
