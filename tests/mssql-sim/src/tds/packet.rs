//! TDS packets: an 8-byte header (type, status, big-endian length including the header, spid,
//! packet id, window) and a payload. A message spans packets until one has the
//! end-of-message status bit.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Length of a packet header.
pub const HEADER_LEN: usize = 8;
/// The packet size every connection starts with.
pub const DEFAULT_PACKET_SIZE: usize = 4096;
/// Largest packet size a client may negotiate (SQL Server's limit).
pub const MAX_PACKET_SIZE: usize = 32_767;
const STATUS_END_OF_MESSAGE: u8 = 0x01;
/// Refuse messages above this size rather than grow without bound on a hostile peer.
const MAX_MESSAGE_LEN: usize = 256 * 1024 * 1024;

/// Packet types the simulator handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// A SQL batch (`simple_query`).
    SqlBatch,
    /// A remote procedure call (`sp_executesql`).
    Rpc,
    /// The server's answer.
    TabularResult,
    /// Cancel the request in flight.
    Attention,
    /// LOGIN7.
    Login7,
    /// PRELOGIN.
    PreLogin,
    /// Anything else (answered with an error).
    Other(u8),
}

impl PacketType {
    fn from_byte(byte: u8) -> PacketType {
        match byte {
            0x01 => PacketType::SqlBatch,
            0x03 => PacketType::Rpc,
            0x04 => PacketType::TabularResult,
            0x06 => PacketType::Attention,
            0x10 => PacketType::Login7,
            0x12 => PacketType::PreLogin,
            other => PacketType::Other(other),
        }
    }

    fn byte(self) -> u8 {
        match self {
            PacketType::SqlBatch => 0x01,
            PacketType::Rpc => 0x03,
            PacketType::TabularResult => 0x04,
            PacketType::Attention => 0x06,
            PacketType::Login7 => 0x10,
            PacketType::PreLogin => 0x12,
            PacketType::Other(other) => other,
        }
    }
}

/// A whole message, reassembled from its packets.
#[derive(Debug, Clone)]
pub struct Message {
    /// Type of its packets.
    pub packet_type: PacketType,
    /// Concatenated payloads.
    pub payload: Vec<u8>,
}

/// Reads one message; None when the peer closed the connection between messages.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Message>> {
    let mut payload = Vec::new();
    let mut packet_type = None;
    loop {
        let mut header = [0u8; HEADER_LEN];
        match reader.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && packet_type.is_none() => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length < HEADER_LEN {
            return Err(invalid(format!(
                "packet length {length} is below the header size"
            )));
        }
        let start = payload.len();
        if start + length > MAX_MESSAGE_LEN {
            return Err(invalid("message above 256 MiB".to_owned()));
        }
        payload.resize(start + length - HEADER_LEN, 0);
        reader.read_exact(&mut payload[start..]).await?;
        packet_type.get_or_insert(PacketType::from_byte(header[0]));
        if header[1] & STATUS_END_OF_MESSAGE != 0 {
            let packet_type = packet_type.unwrap_or(PacketType::Other(header[0]));
            return Ok(Some(Message {
                packet_type,
                payload,
            }));
        }
    }
}

/// Writes `payload` as one message of `packet_type`, split into packets of `packet_size`.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    packet_type: PacketType,
    payload: &[u8],
    packet_size: usize,
) -> std::io::Result<()> {
    let chunk_size = packet_size.clamp(512, MAX_PACKET_SIZE) - HEADER_LEN;
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(chunk_size).collect()
    };
    let mut buffer = Vec::with_capacity(payload.len() + chunks.len() * HEADER_LEN);
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let status = if index == last {
            STATUS_END_OF_MESSAGE
        } else {
            0
        };
        let length = u16::try_from(chunk.len() + HEADER_LEN)
            .map_err(|_| invalid("packet over 64 KiB".to_owned()))?;
        let packet_id = (index % 256) as u8;
        buffer.extend_from_slice(&[packet_type.byte(), status]);
        buffer.extend_from_slice(&length.to_be_bytes());
        buffer.extend_from_slice(&[0, 0, packet_id.wrapping_add(1), 0]);
        buffer.extend_from_slice(chunk);
    }
    writer.write_all(&buffer).await?;
    writer.flush().await
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_larger_than_a_packet_is_split_and_reassembled() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        write_message(&mut wire, PacketType::TabularResult, &payload, 4096)
            .await
            .unwrap();
        assert_eq!(wire.len(), payload.len() + 3 * HEADER_LEN, "three packets");
        assert_eq!(wire[1], 0, "first packet is not the last");
        let message = read_message(&mut wire.as_slice()).await.unwrap().unwrap();
        assert_eq!(message.packet_type, PacketType::TabularResult);
        assert_eq!(message.payload, payload);
    }

    #[tokio::test]
    async fn end_of_stream_between_messages_is_not_an_error() {
        assert!(read_message(&mut [].as_slice()).await.unwrap().is_none());
        let truncated = [0x01u8, 0x01, 0x00, 0x20, 0, 0, 1, 0, 1, 2];
        assert!(read_message(&mut truncated.as_slice()).await.is_err());
    }
}
