//! LOGIN7: what the client sends to log in.

/// The fields of a LOGIN7 message the simulator uses.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// SQL login name.
    pub user: String,
    /// Password, de-obfuscated.
    pub password: String,
    /// Initial database (empty: the login's default, `master`).
    pub database: String,
    /// Application name.
    pub app_name: String,
    /// Requested packet size (0: keep the server's).
    pub packet_size: u32,
    /// TDS version the client speaks.
    pub tds_version: u32,
}

/// Parses a LOGIN7 payload; None when it is malformed.
pub fn parse(payload: &[u8]) -> Option<Login> {
    let u32_at = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u16_at = |at: usize| {
        payload
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    // After the fixed 36 bytes comes a table of (offset, length in UTF-16 units) pairs:
    // host, user, password, app, server, extension, client interface, language, database.
    let field = |index: usize| -> Option<&[u8]> {
        let entry = 36 + index * 4;
        let offset = usize::from(u16_at(entry)?);
        let length = usize::from(u16_at(entry + 2)?) * 2;
        payload.get(offset..offset + length)
    };
    Some(Login {
        tds_version: u32_at(4)?,
        packet_size: u32_at(8)?,
        user: utf16(field(1)?)?,
        password: utf16(&deobfuscate(field(2)?))?,
        app_name: utf16(field(3)?)?,
        database: utf16(field(8)?)?,
    })
}

/// Reverses the password obfuscation: XOR each byte with 0xA5, then swap its nibbles.
pub fn deobfuscate(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| (b ^ 0xa5).rotate_left(4)).collect()
}

/// Decodes UTF-16LE bytes.
pub fn utf16(bytes: &[u8]) -> Option<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deobfuscation_reverses_the_clients_encoding() {
        // The client swaps nibbles, then XORs with 0xA5.
        let obfuscate = |b: u8| b.rotate_left(4) ^ 0xa5;
        let clear: Vec<u8> = (0..=255u8).collect();
        let sent: Vec<u8> = clear.iter().map(|b| obfuscate(*b)).collect();
        assert_eq!(deobfuscate(&sent), clear);
    }
}
